"""CIFAR-10 in its python layout (``cifar-10-batches-py/``), read without executing code.

The batches are pickles. :class:`_CifarUnpickler` resolves only the few numpy constructors and the
codec helper those files name, so a crafted file cannot run anything; every other global is refused
with one :class:`~crackscope.errors.InputError` line naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from crackscope.errors import InputError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_SPLITS = {"train": tuple(f"data_batch_{k}" for k in range(1, 6)), "test": ("test_batch",)}
CIFAR_META = "batches.meta"
CIFAR_SIDE = 32
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, whatever its module
_SCALAR = np.int64(0).__reduce__()[0]  # numpy's multiarray.scalar


def _safe_reconstruct(subtype, shape, dtype):
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') followed by __setstate__
    if subtype is not np.ndarray or int(np.prod(shape)) != 0:
        raise pickle.UnpicklingError("unexpected array reconstruction")
    return _RECONSTRUCT(subtype, shape, dtype)


def _safe_dtype(obj, align=False, copy=False):
    if not isinstance(obj, (str, bytes)):
        raise pickle.UnpicklingError(f"dtype {obj!r} is not allowed")
    dt = np.dtype(obj.decode("ascii") if isinstance(obj, bytes) else obj)
    if dt.kind not in "biuf":
        raise pickle.UnpicklingError(f"dtype {dt} is not allowed")
    return np.dtype(dt, align=bool(align), copy=bool(copy))


def _safe_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise pickle.UnpicklingError("unexpected numpy scalar")
    return _SCALAR(dtype, data)


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes in protocol 2 as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected call to _codecs.encode")
    return text.encode("latin1", errors)


_ALLOWED = {("_codecs", "encode"): _latin1_encode, ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _safe_dtype}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _safe_reconstruct
    _ALLOWED[(_mod, "scalar")] = _safe_scalar


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the few globals a CIFAR batch uses (every global, extension
    and class lookup of the pickle machine goes through ``find_class``; persistent ids are refused
    by default)."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def _load_pickle(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"CIFAR-10 file not found: {path}")
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # untrusted bytes: any failure of the pickle machine means a bad file
        raise InputError(f"cannot read CIFAR-10 batch {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise InputError(f"CIFAR-10 batch {path} holds a {type(obj).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 python batch as ``(pixels uint8 (N, 3, 32, 32), labels int64 (N,))``.

    The batch's ``data`` rows are 3072 bytes: the red, green and blue 32x32 planes, row-major."""
    path = Path(path)
    d = _load_pickle(path)
    data, labels = d.get("data"), d.get("labels")
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3 * CIFAR_SIDE * CIFAR_SIDE
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise InputError(f"CIFAR-10 batch {path}: 'data' must be a uint8 array of shape (N, 3072), got {got}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or len(labels) != len(data):
        raise InputError(f"CIFAR-10 batch {path}: 'labels' must be a list of {len(data)} integers")
    try:
        lab = np.asarray(labels)
        ok = lab.ndim == 1 and (lab.size == 0 or lab.dtype.kind in "iu")
    except (TypeError, ValueError):
        ok = False
    if not ok or (lab.size and (lab.min() < 0 or lab.max() >= len(CIFAR10_CLASSES))):
        raise InputError(f"CIFAR-10 batch {path}: 'labels' must be integers in 0..{len(CIFAR10_CLASSES) - 1}")
    pixels = np.ascontiguousarray(data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE))
    return pixels, lab.astype(np.int64)


def read_cifar_meta(path: str | Path) -> list[str]:
    """The ten class names of ``batches.meta``."""
    path = Path(path)
    names = _load_pickle(path).get("label_names")
    if (
        not isinstance(names, list)
        or len(names) != len(CIFAR10_CLASSES)
        or not all(isinstance(n, (bytes, str)) for n in names)
    ):
        raise InputError(f"CIFAR-10 meta {path}: 'label_names' must be a list of {len(CIFAR10_CLASSES)} strings")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _cifar_dir(root: Path) -> Path | None:
    for d in (root, root / CIFAR_DIR):
        if any((d / n).is_file() for n in (CIFAR_META, *CIFAR_SPLITS["train"], *CIFAR_SPLITS["test"])):
            return d
    return None


# ---- layout detection and listing ---------------------------------------------------------------
