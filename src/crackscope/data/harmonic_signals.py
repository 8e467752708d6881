"""Measured harmonic signals: a folder of 1-D recordings plus a CSV manifest -> (C, length) samples.

The harmonic classifiers (``crackscope.models.harmonics``; the harmonics paper, sections 3.1 and 3.3) take
one sensor's 2nd and 3rd harmonic responses, 4760 time samples each. This module reads the same
kind of input from lab recordings.

Folder layout::

    <root>/manifest.csv          (or any name/path given as ``manifest=``)
    <root>/<signal files>        paths in the manifest are relative to <root> (absolute ones allowed)

Manifest: a CSV file with a header line naming at least the columns ``sample``, ``file``, ``label``,
``sensor`` and ``channel`` (any order, names case-insensitive; further columns are ignored). One row
is one recording of one channel::

    sample,file,label,sensor,channel
    plate07,plate07_a_h2.npy,q1_s2,a,h2
    plate07,plate07_a_h3.csv,q1_s2,a,h3

* ``sample`` identifies the specimen/measurement. One dataset item is one (sample, sensor) pair
  with all the requested ``channels`` stacked in the order given (by default ``("h2", "h3")``:
  channel 0 = 2nd harmonic, channel 1 = 3rd, as the fusion models expect). The explicit column is
  required because file names follow no convention we could rely on. Items come in the order in
  which their (sample, sensor) first appears in the manifest.
* ``channel`` is free text ("h2", "h3", or any name); rows of channels not requested are ignored.
  Each requested channel must appear exactly once per (sample, sensor).
* ``sensor`` is a name such as a/b/c; ``sensor=`` keeps one sensor (or a list of sensors).
* ``label`` is the class name; all rows of one item must agree. Labels map to indices in sorted
  order -- numerically when every label is an integer ("2" before "10"), else as strings -- or by
  position in an explicit ``labels=`` list. The names in index order are ``dataset.labels``.

Signal files, by extension:

* ``.npy`` -- a 1-D numeric array (a (n, 1) or (1, n) array is taken as 1-D); no pickles.
* ``.csv`` -- one value per line in a single column; the first line may be a header.
* anything else (``.txt``, ``.dat``, ...) -- text with one value per line; the first line may be a
  header. Blank lines are skipped in both text formats.

Resampling: every signal is brought to ``length`` samples by linear interpolation over a normalised
time axis -- sample ``i`` of an ``n``-sample recording sits at ``t = i / (n - 1)``, output sample
``j`` at ``t = j / (length - 1)`` -- so the first and last samples are kept and a signal already
``length`` long is unchanged (``numpy.interp``). Recordings of different lengths thus end up on one
grid; no anti-alias filter is applied when shortening, so down-sample heavily oversampled recordings
beforehand if aliasing matters.

All files are read, checked and resampled at construction (a few thousand floats per signal), so
every bad row is reported before training starts; ``__getitem__`` only indexes memory and is safe
with ``DataLoader(num_workers > 0)``. Errors are :class:`crackscope.errors.InputError` naming the
manifest line or the file: missing manifest or column, empty field, missing or unreadable file,
NaN/Inf values, empty or one-sample signals, duplicated or missing channels, conflicting or unknown
labels.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from crackscope.errors import InputError, dataset_index, require_positive_int

__all__ = ["HarmonicSignalDataset", "read_signal", "resample_linear", "MANIFEST_COLUMNS"]

MANIFEST_COLUMNS = ("sample", "file", "label", "sensor", "channel")


# ---- single signals --------------------------------------------------------------------------------
def resample_linear(signal: np.ndarray, length: int) -> np.ndarray:
    """``signal`` (n >= 2 samples) linearly interpolated to ``length`` samples over t in [0, 1]."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 1 or signal.size < 2:
        raise InputError(f"a signal to resample needs >= 2 samples in one dimension, got shape {signal.shape}")
    length = require_positive_int("length", length)
    if signal.size == length:
        return signal.copy()
    t_in = np.linspace(0.0, 1.0, signal.size)
    t_out = np.linspace(0.0, 1.0, length)
    return np.interp(t_out, t_in, signal)


def _parse_text(path: Path, delimiter: str | None) -> np.ndarray:
    """One value per line; the first non-blank line may be a header. ``delimiter`` None = text."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read signal file {path}: {e}") from None
    values: list[float] = []
    first = True
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        fields = [f.strip() for f in text.split(delimiter)] if delimiter else text.split()
        if delimiter and fields and fields[-1] == "" and len(fields) == 2:  # a trailing comma
            fields = fields[:1]
        if len(fields) != 1:
            raise InputError(
                f"signal file {path} line {lineno}: expected one value per line, "
                f"got {len(fields)} fields ({text[:60]!r})"
            )
        try:
            values.append(float(fields[0]))
        except ValueError:
            if first:  # a header line
                first = False
                continue
            raise InputError(f"signal file {path} line {lineno}: {fields[0][:60]!r} is not a number") from None
        first = False
    return np.asarray(values, dtype=np.float64)


def read_signal(path: str | Path) -> np.ndarray:
    """A measured 1-D signal as float64, from .npy, .csv (one column) or text (one value per line).

    InputError naming the file if it is missing, cannot be parsed, is not 1-D, has fewer than two
    samples or holds NaN/Inf.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"signal file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"cannot read signal file {path}: {e}") from None
        if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
            kind = getattr(data, "dtype", type(data).__name__)
            raise InputError(f"signal file {path} does not hold a real numeric array (got {kind})")
        if data.ndim == 2 and 1 in data.shape:
            data = data.reshape(-1)
        if data.ndim != 1:
            raise InputError(f"signal file {path} holds an array of shape {data.shape}; expected a 1-D signal")
        data = data.astype(np.float64)
    else:
        data = _parse_text(path, "," if suffix == ".csv" else None)
    if data.size < 2:
        raise InputError(f"signal file {path} has {data.size} sample(s); a signal needs at least 2")
    bad = ~np.isfinite(data)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"signal file {path} holds {int(bad.sum())} NaN/Inf value(s), the first at index {i}")
    return data


# ---- the manifest ---------------------------------------------------------------------------------
def _sort_labels(names: Iterable[str]) -> list[str]:
    names = sorted(set(names))
    try:
        return sorted(names, key=int)
    except ValueError:
        return names


def _as_names(what: str, value) -> tuple[str, ...]:
    try:
        items = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        raise InputError(f"{what} must be a name or a list of names (got {value!r})") from None
    if not all(isinstance(v, str) and v.strip() for v in items) or not items:
        raise InputError(f"{what} must be a non-empty name or list of non-empty names (got {value!r})")
    items = tuple(v.strip() for v in items)
    if len(set(items)) != len(items):
        raise InputError(f"{what} lists a name twice: {value!r}")
    return items


class HarmonicSignalDataset(Dataset):
    """Measured harmonic signals listed in a manifest; item i is ``(x, label)``.

    ``x`` is a float32 tensor (len(channels), length) -- the requested channels of one (sample,
    sensor), each resampled to ``length`` -- and ``label`` an int64 scalar tensor, the label's index
    in :attr:`labels`. See the module docstring for the folder and manifest format.

    Attributes: ``labels`` (label names in index order), ``keys`` ((sample, sensor) per item),
    ``label_names`` and ``targets`` (label name and index per item), ``files`` ({channel: path} per
    item), ``channels``, ``length``, ``signals`` (the (N, C, length) float32 array).
    """

    def __init__(
        self,
        root: str | Path,
        manifest: str | Path = "manifest.csv",
        length: int = 4760,
        channels: Sequence[str] = ("h2", "h3"),
        sensor: str | Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"signal folder not found: {self.root}")
        self.length = require_positive_int("length", length)
        if self.length < 2:
            raise InputError(f"length must be at least 2 (got {length!r})")
        self.channels = _as_names("channels", channels)
        sensors = None if sensor is None else set(_as_names("sensor", sensor))
        if labels is not None and not isinstance(labels, str) and isinstance(labels, Iterable):
            labels = [str(v) for v in labels]  # manifest labels are text: labels=[0, 1] means "0", "1"
        explicit = None if labels is None else _as_names("labels", labels)
        self.manifest_path = Path(manifest) if Path(manifest).is_absolute() else self.root / manifest

        rows = self._read_manifest()
        where = self.manifest_path.name
        groups: dict[tuple[str, str], dict] = {}
        seen_sensors: set[str] = set()
        for line, row in rows:
            seen_sensors.add(row["sensor"])
            if sensors is not None and row["sensor"] not in sensors:
                continue
            if row["channel"] not in self.channels:
                continue
            key = (row["sample"], row["sensor"])
            group = groups.setdefault(key, {"label": row["label"], "line": line, "files": {}})
            if row["label"] != group["label"]:
                raise InputError(
                    f"{where} line {line}: label {row['label']!r} of sample {key[0]!r} sensor "
                    f"{key[1]!r} conflicts with {group['label']!r} on line {group['line']}"
                )
            if row["channel"] in group["files"]:
                raise InputError(
                    f"{where} line {line}: channel {row['channel']!r} of sample {key[0]!r} sensor "
                    f"{key[1]!r} is listed twice"
                )
            group["files"][row["channel"]] = (line, row["file"])
        if sensors is not None and not sensors & seen_sensors:
            raise InputError(
                f"{where}: no rows for sensor {sorted(sensors)}; the manifest has sensors {sorted(seen_sensors)}"
            )
        if not groups:
            raise InputError(
                f"{where}: no rows with channels {list(self.channels)}"
                + ("" if sensors is None else f" for sensor {sorted(sensors)}")
            )

        if explicit is None:
            self.labels = _sort_labels(g["label"] for g in groups.values())
        else:
            self.labels = list(explicit)
            for key, g in groups.items():
                if g["label"] not in self.labels:
                    raise InputError(
                        f"{where} line {g['line']}: label {g['label']!r} of sample {key[0]!r} is not "
                        f"in labels={self.labels}"
                    )
        index = {name: i for i, name in enumerate(self.labels)}

        self.keys: list[tuple[str, str]] = []
        self.label_names: list[str] = []
        self.files: list[dict[str, Path]] = []
        signals = np.empty((len(groups), len(self.channels), self.length), dtype=np.float32)
        for n, (key, g) in enumerate(groups.items()):
            missing = [c for c in self.channels if c not in g["files"]]
            if missing:
                raise InputError(
                    f"{where} line {g['line']}: sample {key[0]!r} sensor {key[1]!r} has no "
                    f"{', '.join(repr(c) for c in missing)} channel (needs {list(self.channels)})"
                )
            paths = {}
            for c, ch in enumerate(self.channels):
                line, name = g["files"][ch]
                path = Path(name) if Path(name).is_absolute() else self.root / name
                try:
                    signals[n, c] = resample_linear(read_signal(path), self.length)
                except InputError as e:
                    raise InputError(f"{where} line {line}: {e}") from None
                paths[ch] = path
            self.keys.append(key)
            self.label_names.append(g["label"])
            self.files.append(paths)
        self.signals = signals
        self.targets = np.asarray([index[name] for name in self.label_names], dtype=np.int64)

    def _read_manifest(self) -> list[tuple[int, dict[str, str]]]:
        """(line number, {column: stripped value}) per data row; InputError for a missing file/column/field."""
        path = self.manifest_path
        if not path.is_file():
            raise InputError(f"manifest not found: {path}")
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    raise InputError(
                        f"manifest {path} is empty; it needs a header line with columns {', '.join(MANIFEST_COLUMNS)}"
                    )
                names = [h.strip().lower() for h in header]
                missing = [c for c in MANIFEST_COLUMNS if c not in names]
                if missing:
                    raise InputError(
                        f"manifest {path} has no column {', '.join(repr(c) for c in missing)} "
                        f"(header: {header}; needs {', '.join(MANIFEST_COLUMNS)})"
                    )
                where = {c: names.index(c) for c in MANIFEST_COLUMNS}
                rows = []
                for fields in reader:
                    line = reader.line_num
                    if not any(f.strip() for f in fields):
                        continue
                    row = {c: (fields[i].strip() if i < len(fields) else "") for c, i in where.items()}
                    empty = [c for c, v in row.items() if not v]
                    if empty:
                        raise InputError(f"{path.name} line {line}: empty {', '.join(empty)}")
                    rows.append((line, row))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise InputError(f"cannot read manifest {path}: {e}") from None
        if not rows:
            raise InputError(f"manifest {path} lists no signals")
        return rows

    @property
    def sensors(self) -> list[str]:
        """The sensor names present, sorted."""
        return sorted({sensor for _, sensor in self.keys})

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = dataset_index(i, len(self), "HarmonicSignalDataset")
        return torch.from_numpy(self.signals[i].copy()), torch.tensor(self.targets[i], dtype=torch.int64)

    def __repr__(self) -> str:
        return (
            f"HarmonicSignalDataset({str(self.root)!r}, {len(self)} items, channels={list(self.channels)}, "
            f"length={self.length}, labels={self.labels})"
        )
