"""Image-classification data for the binary pipeline: NEU-CLS, one folder per class, CIFAR-10.

Three on-disk layouts are read (``format=``, or ``"auto"`` to detect them):

* ``"neu-cls"`` -- the NEU surface defect database (Song & Yan 2013): the flat folder
  ``<root>/<P>_<n>.bmp`` (200x200 grey BMP with a palette), class from the file prefix ``P`` in the
  fixed order ``Cr`` crazing, ``In`` inclusion, ``Pa`` patches, ``PS`` pitted surface, ``RS``
  rolled-in scale, ``Sc`` scratches. The one-folder-per-class variant is read too: folders named by
  the prefix (``Cr/``) or the full name (``crazing/``, ``pitted_surface/``, ``Rolled-in Scale/``;
  case, spaces, ``-`` and ``_`` are ignored), mapped to the same six classes in the same order.
* ``"folder"`` -- any ``<root>/<class>/<image>`` tree; classes are the folder names in natural
  order, images any Pillow format, grey or RGB, any size.
* ``"cifar10"`` -- the CIFAR-10 python batches (``data_batch_1`` .. ``data_batch_5`` = ``split=
  "train"``, ``test_batch`` = ``"test"``, names from ``batches.meta``) in ``<root>`` or
  ``<root>/cifar-10-batches-py``. The batches are pickles; they are read by a restricted unpickler
  that can build nothing but dicts, lists, strings, numbers and plain numeric numpy arrays, so a
  tampered file is refused (:class:`InputError`) and never runs code.

Items are ``(image, label)``: float32 (C, H, W) in [0, 1] (C = ``channels``: colour is converted to
luminance for 1, grey replicated for 3) and an int64 scalar tensor. Image files are opened lazily in
``__getitem__`` (the dataset holds no open handles, so ``DataLoader(num_workers > 0)`` is safe);
CIFAR pixels are held in memory (uint8, 150 MB for the whole training set).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from crackscope.data.cifar import (  # noqa: F401  (re-exported)
    CIFAR10_CLASSES,  # noqa: F401
    CIFAR_DIR,
    CIFAR_META,
    CIFAR_SIDE,
    CIFAR_SPLITS,
    _cifar_dir,
    read_cifar_batch,
    read_cifar_meta,
)
from crackscope.data.formats import IMAGE_CLASSIFICATION_FORMATS
from crackscope.data.images import image_extensions, load_image, natural_key, normalize_size
from crackscope.errors import InputError, dataset_index

__all__ = [
    "FORMATS",
    "AUGMENTATIONS",
    "NEU_CLS_CLASSES",
    "CIFAR10_CLASSES",
    "ImageClassificationDataset",
    "detect_format",
    "read_cifar_batch",
    "read_cifar_meta",
    "resize_image",
]

FORMATS = IMAGE_CLASSIFICATION_FORMATS
NEU_CLS_CLASSES = {
    "Cr": "crazing",
    "In": "inclusion",
    "Pa": "patches",
    "PS": "pitted surface",
    "RS": "rolled-in scale",
    "Sc": "scratches",
}
AUGMENTATIONS = ("flips_rotations", "crop_flip", "camera")  # augment=True is "flips_rotations"
CROP_PADDING = 4  # pixels of zero padding around the image for "crop_flip" (the usual CIFAR recipe)


def _folder_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


# folder name (normalised by _folder_key) -> NEU-CLS prefix; "pitted"/"rolled" are the Kaggle names
_NEU_FOLDERS = {_folder_key(p): p for p in NEU_CLS_CLASSES}
_NEU_FOLDERS.update({_folder_key(n): p for p, n in NEU_CLS_CLASSES.items()})
_NEU_FOLDERS.update({"pitted": "PS", "rolled": "RS"})


def neu_class_of_folder(name: str) -> str | None:
    """The NEU-CLS prefix a class folder name stands for (``"crazing"`` -> ``"Cr"``), or ``None``."""
    return _NEU_FOLDERS.get(_folder_key(name))


def _images_in(folder: Path) -> list[Path]:
    exts = image_extensions()
    return [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file() and p.suffix.lower() in exts]


def _class_dirs(root: Path) -> list[Path]:
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name)
    )


def detect_format(root: str | Path) -> str:
    """``"cifar10"`` if CIFAR-10 batches are there, ``"neu-cls"`` for a flat folder of images or for
    six class folders named after the NEU-CLS classes, ``"folder"`` for other class folders."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    if _cifar_dir(root) is not None:
        return "cifar10"
    if _images_in(root):
        return "neu-cls"
    dirs = _class_dirs(root)
    if not dirs:
        raise InputError(f"no images, class folders or CIFAR-10 batches found in {root}")
    if {neu_class_of_folder(d.name) for d in dirs} == set(NEU_CLS_CLASSES):
        return "neu-cls"
    return "folder"


def _sorted_files(files: Iterable[Path], folder: Path) -> list[Path]:
    files = sorted(files, key=lambda p: (natural_key(p.stem), p.suffix))
    for a, b in zip(files, files[1:]):
        if a.stem == b.stem:
            raise InputError(f"two files share the stem {a.stem!r} in {folder}: {a.name} and {b.name}")
    return files


def _list_class_folders(root: Path, class_of: Callable[[Path], str | None]):
    """``{class: [files]}`` of a one-folder-per-class tree; ``class_of(folder)`` names the class."""
    dirs = _class_dirs(root)
    if not dirs:
        raise InputError(f"no images or class folders found in {root}")
    out: dict[str, list[Path]] = {}
    owner: dict[str, Path] = {}
    for d in dirs:
        cls = class_of(d)
        if cls in owner:
            raise InputError(f"class folders {owner[cls]} and {d} are the same class {cls!r}")
        files = _images_in(d)
        if not files:
            raise InputError(f"class folder {d} has no images")
        owner[cls] = d
        out[cls] = _sorted_files(files, d)
    return out


def _neu_class_of_file(path: Path) -> str:
    prefix = path.stem.split("_", 1)[0]
    if prefix not in NEU_CLS_CLASSES:
        raise InputError(
            f"image {path}: file-name prefix {prefix!r} is not a NEU-CLS class ({', '.join(NEU_CLS_CLASSES)})"
        )
    return prefix


def _neu_class_of_dir(d: Path) -> str:
    cls = neu_class_of_folder(d.name)
    if cls is None:
        raise InputError(
            f"class folder {d}: {d.name!r} is not a NEU-CLS class (a prefix "
            f"{', '.join(NEU_CLS_CLASSES)} or a name {', '.join(NEU_CLS_CLASSES.values())})"
        )
    return cls


def resize_image(image: np.ndarray | torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """A (C, H, W) image in [0, 1] as a float32 tensor resized to ``size`` (bilinear, antialiased;
    ``None`` keeps its size): what :class:`ImageClassificationDataset` does before augmenting, for
    images read one by one (prediction)."""
    x = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32))
    size = normalize_size(size)
    if size is not None and tuple(x.shape[-2:]) != size:
        x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0].clamp_(0.0, 1.0)
    return x


# ---- the dataset --------------------------------------------------------------------------------
class ImageClassificationDataset(Dataset):
    """Images with a class label; items ``(image float32 (C, H, W) in [0, 1], label int64 tensor)``.

    Parameters
    ----------
    root: the dataset folder (module docstring for the layouts).
    format: ``"auto"``, ``"neu-cls"``, ``"folder"`` or ``"cifar10"``.
    size: ``None`` keeps each image's size; an int or (H, W) resizes (bilinear, antialiased).
    channels: 1 (grey; colour is converted to luminance) or 3 (grey is replicated).
    augment: ``False``; ``True`` or ``"flips_rotations"`` for random horizontal and vertical flips
        and, for square images, random 90-degree rotations (defect textures have no orientation);
        ``"crop_flip"`` for the CIFAR recipe the AOIE-Net paper trains CIFAR-10 with (section 4.1):
        zero-pad by :data:`CROP_PADDING` pixels, cut a window of the image's size at a random offset,
        flip it horizontally with probability 1/2 (natural images have an up and a down) -- for
        training sets only; ``"camera"``: the flips and rotations, then the photometric changes of
        :class:`~crackscope.data.camera_augment.CameraAugment` (another camera's exposure, gamma,
        contrast, illumination gradient, colour, blur, noise, JPEG; drawn from (seed, e, i, 1));
        or a callable ``image -> image`` on tensors. Applied after resizing.
    camera: options of :class:`~crackscope.data.camera_augment.CameraAugment` for ``augment="camera"``
        (``None``: its defaults). ``p_hard_negative`` draws one hard negative (a joint, plank edge,
        shadow, stain, tyre mark, road paint, text or tape measure:
        :mod:`crackscope.data.hard_negatives`) into that share of the images, before the
        photometric changes and from (seed, e, i, 2), the label unchanged: a tile classifier learns
        that such things are not cracks. ``p_sound`` (crack-free crops) is for segmenters' crops and
        is refused here: a classifier's images are labelled already; so is ``p_synthetic_crack``
        (drawn cracks), except by datasets whose labels come from masks (``labels_from_masks``:
        :class:`~crackscope.data.tiles.CrackTileDataset`).
    indices: positions in the sorted item list to keep (order kept, repeats dropped); ``None`` = all.
    split: CIFAR-10 only: ``"train"`` (default, ``data_batch_1..5``) or ``"test"`` (``test_batch``).
    seed: the seed of the augmentation.

    The augmentation is deterministic: item ``i`` of epoch ``e`` draws its flips, rotation or crop from
    ``numpy.random.default_rng([seed, e, i])``. Call :meth:`set_epoch` at the start of each epoch
    (DataLoader workers copy the dataset when an epoch starts unless ``persistent_workers=True``,
    so they see the new epoch; with persistent workers the epoch stays the one they copied).

    Attributes: ``classes`` (names; NEU-CLS uses the prefixes, full names in
    :data:`NEU_CLS_CLASSES`), ``targets`` (int64 array), ``files`` (paths; ``None`` for CIFAR-10),
    ``stems`` (ids for recording splits: the file stem for flat NEU-CLS, ``<folder>/<stem>`` for class
    folders, ``<batch>/<row>`` for CIFAR-10), ``format``. Items are ordered by class, then by the
    natural order of the stems (CIFAR-10: batch order).
    """

    labels_from_masks = False  # True where a label is computed from a crack mask (drawn cracks can change it)

    def __init__(
        self,
        root: str | Path,
        format: str = "auto",
        size: int | Sequence[int] | None = None,
        channels: int = 1,
        augment: bool | Callable | None = False,
        indices: Iterable[int] | None = None,
        split: str | None = None,
        seed: int = 0,
        camera: Mapping[str, Any] | None = None,
    ):
        if format not in FORMATS:
            raise InputError(f"format={format!r} is not one of {', '.join(FORMATS)}")
        self._init_common(root, size, channels, augment, seed, camera)
        self.format = detect_format(self.root) if format == "auto" else format
        if split is not None and self.format != "cifar10":
            raise InputError(f"split={split!r} applies to CIFAR-10 only; {self.root} is {self.format}")
        self.split = (split or "train") if self.format == "cifar10" else None
        if self.split is not None and self.split not in CIFAR_SPLITS:
            raise InputError(f"split={split!r} must be 'train' or 'test'")
        if self.format == "cifar10":
            self._init_cifar()
        else:
            self._init_files()
        if indices is not None:
            self._select(indices)

    def _init_common(self, root, size, channels, augment, seed, camera=None) -> None:
        """Check and set what every layout shares: root, size, channels, augmentation (and its camera
        options), seed."""
        if isinstance(channels, (bool, np.bool_)) or channels not in (1, 3):
            raise InputError(f"channels={channels!r} must be 1 or 3")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed={seed!r} must be a non-negative integer")
        if augment is None:
            augment = False
        if augment is True:
            augment = "flips_rotations"
        if not (augment is False or augment in AUGMENTATIONS or callable(augment)):
            raise InputError(
                f"augment={augment!r} must be True, False, {' or '.join(map(repr, AUGMENTATIONS))} "
                f"or a callable image -> image"
            )
        if camera is not None and augment != "camera":
            raise InputError(f"camera={dict(camera)!r}: camera options apply to augment='camera' only")
        refused = [("p_sound", "crack-free crops")]
        if not self.labels_from_masks:
            refused.append(("p_synthetic_crack", "drawn cracks"))
        for key, what in refused:
            if camera is not None and float(camera.get(key, 0.0)) > 0:
                raise InputError(
                    f"camera {key}={camera[key]!r}: {what} are for segmenters; a classifier's "
                    "images are labelled already (use p_hard_negative)"
                )
        if augment == "camera":
            from crackscope.data.camera_augment import CameraAugment

            self._camera = CameraAugment(**dict(camera or {}))
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"dataset folder not found: {self.root}")
        self.size = normalize_size(size)
        self.channels = int(channels)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        self._pixels: np.ndarray | None = None

    # ---- listing ----
    def _init_files(self) -> None:
        if self.format == "neu-cls":
            self.classes = list(NEU_CLS_CLASSES)
            flat = _images_in(self.root)
            if flat:
                by_class: dict[str, list[Path]] = {}
                for p in flat:
                    by_class.setdefault(_neu_class_of_file(p), []).append(p)
                by_class = {c: _sorted_files(v, self.root) for c, v in by_class.items()}
                stem_of = lambda p: p.stem  # noqa: E731
            else:
                by_class = _list_class_folders(self.root, _neu_class_of_dir)
                for c, files in by_class.items():
                    for p in files:
                        pre = p.stem.split("_", 1)[0]
                        if pre in NEU_CLS_CLASSES and pre != c:
                            raise InputError(
                                f"image {p}: file-name prefix {pre!r} contradicts its class "
                                f"folder ({c}, {NEU_CLS_CLASSES[c]})"
                            )
                stem_of = lambda p: f"{p.parent.name}/{p.stem}"  # noqa: E731
        else:
            by_class = _list_class_folders(self.root, lambda d: d.name)
            self.classes = list(by_class)  # folders are listed in natural order
            stem_of = lambda p: f"{p.parent.name}/{p.stem}"  # noqa: E731
        if not by_class:
            raise InputError(f"no images found in {self.root}")
        files, targets = [], []
        for k, c in enumerate(self.classes):
            for p in by_class.get(c, []):
                files.append(p)
                targets.append(k)
        self.files: list[Path] | None = files
        self.targets = np.asarray(targets, dtype=np.int64)
        self.stems: list[str] = [stem_of(p) for p in files]

    def _init_cifar(self) -> None:
        d = _cifar_dir(self.root)
        if d is None:
            raise InputError(f"no CIFAR-10 batches in {self.root} (nor in {self.root / CIFAR_DIR})")
        meta = d / CIFAR_META
        self.classes = read_cifar_meta(meta) if meta.is_file() else list(CIFAR10_CLASSES)
        pixels, targets, stems = [], [], []
        for name in CIFAR_SPLITS[self.split]:
            x, y = read_cifar_batch(d / name)
            pixels.append(x)
            targets.append(y)
            stems.extend(f"{name}/{r}" for r in range(len(y)))
        self._pixels = np.concatenate(pixels)
        self.targets = np.concatenate(targets).astype(np.int64)
        self.files = None
        self.stems = stems

    def _select(self, indices: Iterable[int]) -> list[int]:
        """Keep the items at ``indices`` (order kept, repeats dropped); returns the kept positions."""
        n, keep, seen = len(self.targets), [], set()
        for i in indices:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise InputError(f"indices must be integers, got {i!r}")
            if not 0 <= int(i) < n:
                raise InputError(f"index {int(i)} is out of range for a dataset of {n} images")
            if int(i) not in seen:
                seen.add(int(i))
                keep.append(int(i))
        self.targets = self.targets[keep]
        self.stems = [self.stems[i] for i in keep]
        if self.files is not None:
            self.files = [self.files[i] for i in keep]
        if self._pixels is not None:
            self._pixels = np.ascontiguousarray(self._pixels[keep])
        return keep

    # ---- items ----
    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (see the class docstring)."""
        self.epoch = int(epoch)

    def _read(self, i: int) -> np.ndarray:
        if self._pixels is None:
            return load_image(self.files[i], self.channels)
        rgb = self._pixels[i]
        if self.channels == 1:  # the same ITU-R 601 luminance as Pillow's convert("L") for files
            rgb = np.asarray(Image.fromarray(rgb.transpose(1, 2, 0)).convert("L"))[None]
        return rgb.astype(np.float32) / np.float32(255.0)

    def _flip_rotate(self, x: torch.Tensor, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        hflip, vflip = rng.integers(0, 2, size=2)
        quarter_turns = int(rng.integers(0, 4))
        if hflip:
            x = x.flip(-1)
        if vflip:
            x = x.flip(-2)
        if x.shape[-1] == x.shape[-2] and quarter_turns:
            x = torch.rot90(x, quarter_turns, dims=(-2, -1))
        return x.contiguous()

    def _photometric(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The photometric half of :class:`~crackscope.data.camera_augment.CameraAugment` (illumination,
        gamma, contrast, gradient, colour, blur, noise, JPEG), drawn from (seed, epoch, item, 1):
        independent of the flips' draws; before it, with its ``p_hard_negative``, one hard negative
        drawn from (seed, epoch, item, 2)."""
        params = self._camera.params
        if params["p_hard_negative"] > 0:
            rng = np.random.default_rng([self.seed, self.epoch, i, 2])
            if rng.random() < params["p_hard_negative"]:
                from crackscope.data.hard_negatives import draw_hard_negative

                x = draw_hard_negative(x, rng, kinds=params["hard_negative_kinds"])[0]
        return self._camera.photometric(x, np.random.default_rng([self.seed, self.epoch, i, 1]))

    def _crop_flip(self, x: torch.Tensor, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        dy, dx = (int(d) for d in rng.integers(0, 2 * CROP_PADDING + 1, size=2))
        hflip = int(rng.integers(0, 2))
        h, w = x.shape[-2:]
        x = torch.nn.functional.pad(x, (CROP_PADDING,) * 4)[..., dy : dy + h, dx : dx + w]
        return (x.flip(-1) if hflip else x).contiguous()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = dataset_index(i, len(self), "ImageClassificationDataset")
        x = resize_image(self._read(i), self.size)
        label = int(self.targets[i])
        if self.augment == "flips_rotations":
            x = self._flip_rotate(x, i)
        elif self.augment == "crop_flip":
            x = self._crop_flip(x, i)
        elif self.augment == "camera":
            x, label = self._draw_cracks(self._flip_rotate(x, i), i, label)
            x = self._photometric(x, i)
        elif callable(self.augment):
            x = self.augment(x)
        return x, torch.tensor(label, dtype=torch.int64)

    def _draw_cracks(self, x: torch.Tensor, i: int, label: int) -> tuple[torch.Tensor, int]:
        """The camera augmentation's drawn cracks (``p_synthetic_crack``) and the label they give;
        here none (refused: the labels do not come from masks)."""
        return x, label

    def meta(self, i: int) -> dict[str, Any]:
        """Stem, class name, label and file (``None`` for CIFAR-10) of item ``i``."""
        i = dataset_index(i, len(self), "ImageClassificationDataset")
        return {
            "stem": self.stems[i],
            "label": int(self.targets[i]),
            "cls": self.classes[self.targets[i]],
            "file": None if self.files is None else str(self.files[i]),
        }

    def __repr__(self) -> str:
        return (
            f"ImageClassificationDataset({str(self.root)!r}, format={self.format!r}, n={len(self)}, "
            f"classes={len(self.classes)}, size={self.size}, channels={self.channels})"
        )
