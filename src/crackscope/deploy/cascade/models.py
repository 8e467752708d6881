"""The cascade's two models: :class:`TileClassifier` (crack probability per tile) and
:class:`TileSegmenter` (crack probability per pixel of a window), and their loaders from a run
directory or a shipped model folder (``crackscope.engine.runs.load_run``), which refuse, with one
line, a run of the wrong pipeline or class count.

The classifier runs as the run's PyTorch model (``runtime="torch"``), in ONNX Runtime
(``runtime="onnx"``, :mod:`crackscope.deploy.onnx_runtime`; about half PyTorch's time per tile for the
full-precision screen) or, for a binary network, as its bit-packed XNOR/popcount twin
(``runtime="packed"``, :mod:`crackscope.deploy.packed`). ``runtime="auto"``, the default, is ONNX
Runtime for a full-precision network and PyTorch for a binary one (the packed kernels compile on
first use). All give the same logits up to float rounding. Any other runtime is wrapped as
``TileClassifier(logits_fn, ...)``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crackscope.data.tiles import resize_tiles
from crackscope.deploy.inspect_options import RUNTIMES
from crackscope.engine.runs import OPERATING_POINT_FILE, read_operating_point, run_threshold
from crackscope.errors import InputError
from crackscope.nn.flip_tta import flip_average
from crackscope.shipped import PACKED_SCREENS, label, resolve

__all__ = [
    "TileClassifier",
    "ClassifierEnsemble",
    "TileSegmenter",
    "load_classifier",
    "load_segmenter",
    "write_ensemble",
    "OPERATING_POINT_FILE",
    "ENSEMBLE_FILE",
]

PACKED_FILES = ("model.packed.safetensors", "export/model.packed.safetensors")  # in a run or model folder
ENSEMBLE_FILE = "ensemble.json"  # a folder of tile classifiers whose crack probabilities are averaged
ENSEMBLE_FORMAT = "crackscope-tile-classifier-ensemble/1"


@dataclass
class TileClassifier:
    """Crack probability of tiles from a classification network's logits.

    ``logits_fn``: (N, C, h, w) float -> (N, K) logits (an ``nn.Module`` in eval mode, or another
    runtime's forward). Tiles are resized to ``input_size`` first (antialiased bilinear, as the
    ``deepcrack-tiles`` training data were) and run in chunks of ``batch_size``; the result is the
    softmax probability of class ``crack_index``. ``tile`` and ``threshold`` are the run's tile side
    and its operating point, the defaults of the cascade; ``window`` and ``overlap``, when the
    operating point records them, the segmentation windows it was chosen for (also defaults)."""

    logits_fn: Callable[[torch.Tensor], torch.Tensor]
    crack_index: int = 1
    channels: int = 1
    input_size: tuple[int, int] | None = None
    batch_size: int = 256
    tile: int | None = None
    threshold: float = 0.5
    source: str = ""
    window: int | None = None
    overlap: float | None = None
    runtime: str = "torch"

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(tiles), self.batch_size):
            x = resize_tiles(tiles[start : start + self.batch_size], self.input_size)
            out.append(torch.softmax(self.logits_fn(x).float(), dim=1)[:, self.crack_index])
        return torch.cat(out) if out else torch.zeros(0)


@dataclass
class ClassifierEnsemble:
    """The mean crack probability of several tile classifiers (:class:`TileClassifier`) on the same
    tiles: an average of independently trained screens, whose errors on sound surface differ from
    training to training (docs/survey.md), so that fewer sound tiles score high in all of them.
    ``tile``, ``channels``, ``window`` and ``overlap`` are the members' (which must agree); the
    ``threshold`` is the ensemble's own operating point, chosen on the averaged probability."""

    members: list
    threshold: float = 0.5
    source: str = ""
    window: int | None = None
    overlap: float | None = None

    @property
    def tile(self) -> int | None:
        return self.members[0].tile

    @property
    def channels(self) -> int:
        return self.members[0].channels

    @property
    def runtime(self) -> str:
        return self.members[0].runtime

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        total = None
        for member in self.members:
            p = torch.as_tensor(member(tiles)).float()
            total = p if total is None else total + p
        return total / len(self.members)


@dataclass
class TileSegmenter:
    """Crack probability per pixel of tiles from a segmentation network's logits (N, 1, T, T),
    in chunks of ``batch_size``; ``threshold`` makes the binary mask; ``tta``: flip test-time
    augmentation (:mod:`crackscope.nn.flip_tta`, ``"none"`` by default: one pass per window).
    ``window``: the window side the model was trained on (its training crop, ``data.crop``), the
    default segmentation window of :func:`inspect_image_file`; ``None``: the tile side.

    A model with per-image standardised input (:class:`~crackscope.nn.input_norm.StandardizedInput`)
    is standardised **once per image**, not per window: :meth:`prepare_image` standardises the
    whole image with its own mean and standard deviation and :meth:`on_prepared` runs the network
    on windows of the result. Every window then sees its pixels as the whole image would present
    them to the model; standardising each window on its own would stretch a window holding a crack
    and a window of plain concrete differently (pixel F1 on the validation images of
    ``cracks/segmenter`` with 64-px windows: 0.70 against 0.65 on DeepCrack, 0.61 against 0.54
    on Crack500). Called directly on tiles, the model runs as trained (each tile its own image)."""

    model: Callable[[torch.Tensor], torch.Tensor]
    channels: int = 3
    threshold: float = 0.5
    batch_size: int = 64
    source: str = ""
    window: int | None = None
    tta: str = "none"

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        return self._probability(self.model, tiles)

    def _probability(self, net, tiles: torch.Tensor) -> torch.Tensor:
        def probability(x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(net(x).float())

        out = [
            flip_average(probability, tiles[s : s + self.batch_size], self.tta)[:, 0]
            for s in range(0, len(tiles), self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros((0, *tiles.shape[-2:]))

    @property
    def standardizes(self) -> bool:
        from crackscope.nn.input_norm import StandardizedInput

        return isinstance(self.model, StandardizedInput)

    @torch.inference_mode()
    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """The (C, H, W) image as the network's first layer takes it: standardised with the whole
        image's statistics for a model with per-image standardised input, else unchanged."""
        return self.model.standardize(image[None])[0] if self.standardizes else image

    @torch.inference_mode()
    def on_prepared(self, tiles: torch.Tensor) -> torch.Tensor:
        """Crack probability of windows cut from :meth:`prepare_image`'s output."""
        return self._probability(self.model.net if self.standardizes else self.model, tiles)


def _load(path: Path, task: str, role: str):
    """(config, model, geometry) of a run or model folder whose pipeline (by the registry) does
    ``task`` (``"classification"`` / ``"segmentation"``) on images; one InputError line otherwise."""
    from crackscope.engine import pipelines
    from crackscope.engine.runs import load_run, pipeline_of

    if not path.is_dir():
        raise InputError(f"{role} {path}: no such run directory, model folder or shipped model ('crackscope models')")
    found = pipeline_of(path)
    entry = pipelines.get(found)
    if entry.task != task or entry.inputs != "images":
        what = {"classification": "an image classifier", "segmentation": "an image segmentation model"}[task]
        raise InputError(f"{role} {path} is a {found} run, not {what}")
    return load_run(path)


def _packed(path: Path, model, role: str):
    """The bit-packed twin of a binary classifier: RUN/model.packed.safetensors or
    RUN/export/model.packed.safetensors when there, else packed now from the PyTorch weights."""
    from crackscope.deploy.packed import load_packed, pack_model

    for name in PACKED_FILES:
        if (path / name).is_file():
            return load_packed(path / name)
    try:
        return pack_model(model)
    except InputError as err:
        name = label(path)  # a shipped model by its name
        one_bit = PACKED_SCREENS.get(name)
        hint = f"; the pair's 1-bit screen is {one_bit}" if one_bit else ""
        raise InputError(f"{role} {name}: --runtime packed needs a binary network ({err}){hint}") from None


def _logits_fn(path: Path, model, channels: int, runtime: str, role: str):
    """(logits callable, runtime name) of a loaded classifier for ``runtime`` (``auto`` resolved)."""
    if runtime == "auto":
        from crackscope.models.binary.complexity import binary_weights

        runtime = "torch" if binary_weights(model) else "onnx"
    if runtime == "packed":
        return _packed(path, model, role), runtime
    if runtime == "onnx":
        from crackscope.deploy.onnx_runtime import onnx_logits

        return onnx_logits(path, model, channels), runtime
    return model, runtime


def load_classifier(
    path: str | Path, batch_size: int = 256, role: str = "--classifier", runtime: str = "auto"
) -> TileClassifier:
    """A :class:`TileClassifier` from a classify run or model folder with two classes, one of them
    named ``crack``, or a shipped model's name (a pair's name: its tile classifier). Its
    ``threshold`` is RUN/operating_point.json's (chosen on validation) or 0.5, and its ``window`` /
    ``overlap`` the segmentation windows that threshold was chosen for, when the file records them.
    ``runtime``: ``"torch"`` (the PyTorch model), ``"onnx"`` (ONNX Runtime,
    :func:`crackscope.deploy.onnx_runtime.onnx_logits`), ``"packed"`` (bit-packed, :func:`_packed`), or
    ``"auto"``: ONNX Runtime for a full-precision network, PyTorch for a binary one."""
    from crackscope.engine.runs import model_classes

    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    path, source = resolve(path, "classifier")
    if (path / ENSEMBLE_FILE).is_file():
        return _load_ensemble(path, source, batch_size, role, runtime)
    cfg, model, geometry = _load(path, "classification", role)
    classes = model_classes(path, geometry)
    if len(classes) != 2 or "crack" not in [c.lower() for c in classes]:
        raise InputError(
            f"{role} {path} classifies {len(classes)} classes ({', '.join(classes)}); the cascade "
            f"needs a crack / no-crack classifier (2 classes, one named 'crack')"
        )
    tiles = getattr(cfg.data, "tiles", None)
    point = read_operating_point(path) or {}  # chosen on validation images, with its windows
    threshold, window, overlap = point.get("threshold", 0.5), point.get("window"), point.get("overlap")
    size = cfg.data.size
    logits_fn, runtime = _logits_fn(path, model, int(cfg.data.channels), runtime, role)
    return TileClassifier(
        logits_fn,
        crack_index=[c.lower() for c in classes].index("crack"),
        channels=int(cfg.data.channels),
        input_size=None if size is None else tuple(np.broadcast_to(size, 2).tolist()),
        batch_size=batch_size,
        tile=tiles.tile if tiles is not None else None,
        threshold=threshold,
        source=source,
        window=window,
        overlap=overlap,
        runtime=runtime,
    )


def _ensemble_members(path: Path, role: str) -> list[Path]:
    """The member folders that PATH/ensemble.json names (relative to PATH); one InputError line for
    a file that is not an ensemble's, names no member, or names a folder that is not there."""
    file = path / ENSEMBLE_FILE
    try:
        spec = json.loads(file.read_text())
        members = [str(m) for m in spec["members"]]
        ok = spec.get("format") == ENSEMBLE_FORMAT and members
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InputError(f"{role} {file}: not a tile classifier ensemble (format {ENSEMBLE_FORMAT}, a list of members)")
    folders = [path / m for m in members]
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{role} {file}: member {folder} is not a folder")
        if (folder / ENSEMBLE_FILE).is_file():
            raise InputError(f"{role} {file}: member {folder} is an ensemble itself; name its members instead")
    return folders


def _check_members_agree(members: list[TileClassifier], where: str) -> None:
    """One InputError line (prefixed by ``where``) unless every member takes the same tiles: side,
    channels and input size."""
    first = members[0]
    for m in members[1:]:
        if (m.tile, m.channels, m.input_size) != (first.tile, first.channels, first.input_size):
            raise InputError(
                f"{where}member {m.source} takes {m.tile}-px tiles with {m.channels} channel(s) at "
                f"{m.input_size}, {first.source} {first.tile}-px tiles with {first.channels} at "
                f"{first.input_size}; members must agree"
            )


def _load_ensemble(path: Path, source: str, batch_size: int, role: str, runtime: str) -> ClassifierEnsemble:
    members = [
        load_classifier(m, batch_size=batch_size, role=f"{role} member", runtime=runtime)
        for m in _ensemble_members(path, role)
    ]
    _check_members_agree(members, f"{role} {path}: ")
    point = read_operating_point(path) or {}
    return ClassifierEnsemble(
        members,
        threshold=point.get("threshold", 0.5),
        source=source,
        window=point.get("window"),
        overlap=point.get("overlap"),
    )


def write_ensemble(out: str | Path, members: list[str | Path]) -> Path:
    """Make ``out`` a tile classifier ensemble of ``members`` (classify runs or model folders of two
    classes, which must record the same split): each member is copied whole into
    ``out/members/<k>``, the members' split.json beside them, and ``ensemble.json`` last, so that a
    folder without it is not an ensemble. Its operating point is chosen afterwards
    (``crackscope choose-operating-point OUT ...``); none of the members' is kept. One InputError
    line for a member that does not load, members that disagree, or an ``out`` that exists."""
    out = Path(out)
    if out.exists():
        raise InputError(f"--out {out} exists; choose a new folder")
    if len(members) < 2:
        raise InputError(f"an ensemble needs two or more classifiers (got {len(members)})")
    resolved = [resolve(m, "classifier") for m in members]  # (folder, label) of each
    folders = [folder for folder, _ in resolved]
    for f in folders:
        if (f / ENSEMBLE_FILE).is_file():
            raise InputError(f"member {f} is an ensemble itself; name its members instead")
    loaded = [load_classifier(f, role="member") for f in folders]
    splits = []
    for f in folders:
        if not (f / "split.json").is_file():
            raise InputError(f"member {f} has no split.json; an ensemble's members must record their split")
        try:
            splits.append(json.loads((f / "split.json").read_text()))
        except ValueError as err:
            raise InputError(f"member {f}/split.json is not JSON ({err})") from None
    for f, split in zip(folders[1:], splits[1:]):
        if split != splits[0]:
            raise InputError(f"member {f} records another split than {folders[0]}; train members with the same split")
    _check_members_agree(loaded, "")
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    names = []
    for k, f in enumerate(folders):
        name = f"members/{k}"
        skip = shutil.ignore_patterns("checkpoints", "logs", "figures", OPERATING_POINT_FILE)
        shutil.copytree(f, work / name, ignore=skip)
        names.append(name)
    shutil.copy2(folders[0] / "split.json", work / "split.json")
    spec = {"format": ENSEMBLE_FORMAT, "members": names, "combine": "mean crack probability"}
    spec["sources"] = [label for _, label in resolved]  # what each member was copied from
    (work / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    work.rename(out)
    return out


def load_segmenter(
    path: str | Path, batch_size: int = 64, role: str = "--segmenter", tta: str = "none"
) -> TileSegmenter:
    """A :class:`TileSegmenter` from a surface run or model folder (one output channel), or a
    shipped model's name (a pair's name: its segmenter). Its
    threshold is the run's (RUN/operating_point.json when it chose one on validation images, else
    ``trainer.threshold``). Runs trained with a fixed ``data.size`` are
    refused: tiles are segmented at their own resolution. ``tta``: see :class:`TileSegmenter`."""
    path, source = resolve(path, "segmenter")
    cfg, model, geometry = _load(path, "segmentation", role)
    if int(geometry.get("classes", 1)) != 1:
        raise InputError(f"{role} {path} has {geometry['classes']} output channels; the cascade needs one (crack)")
    if cfg.data.size is not None:
        raise InputError(
            f"{role} {path} was trained on images resized to {cfg.data.size}; the cascade segments "
            f"tiles at their original resolution (train it with data.size=null)"
        )
    return TileSegmenter(
        model,
        channels=int(cfg.data.in_channels),
        threshold=run_threshold(path, cfg),
        batch_size=batch_size,
        source=source,
        window=cfg.data.crop,
        tta=tta,
    )
