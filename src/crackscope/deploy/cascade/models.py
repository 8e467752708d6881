"""The cascade's two models: :class:`TileClassifier` (crack probability per tile) and
:class:`TileSegmenter` (crack probability per pixel of a window), and their loaders from a run
directory or a shipped model folder (``crackscope.engine.runs.load_run``), which refuse, with one
line, a run of the wrong pipeline or class count.

The classifier runs as the run's PyTorch model (``runtime="torch"``) or its bit-packed XNOR/popcount
twin (``runtime="packed"``, :mod:`crackscope.deploy.packed`; same predictions, about half the time
per tile here). Any other runtime is wrapped as ``TileClassifier(logits_fn, ...)``.
"""

from __future__ import annotations

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
from crackscope.shipped import resolve

__all__ = ["TileClassifier", "TileSegmenter", "load_classifier", "load_segmenter", "OPERATING_POINT_FILE"]

PACKED_FILES = ("model.packed.safetensors", "export/model.packed.safetensors")  # in a run or model folder


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

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(tiles), self.batch_size):
            x = resize_tiles(tiles[start : start + self.batch_size], self.input_size)
            out.append(torch.softmax(self.logits_fn(x).float(), dim=1)[:, self.crack_index])
        return torch.cat(out) if out else torch.zeros(0)


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
        raise InputError(f"{role} {path}: --runtime packed needs a binary network ({err})") from None


def load_classifier(
    path: str | Path, batch_size: int = 256, role: str = "--classifier", runtime: str = "torch"
) -> TileClassifier:
    """A :class:`TileClassifier` from a classify run or model folder with two classes, one of them
    named ``crack``, or a shipped model's name (a pair's name: its tile classifier). Its
    ``threshold`` is RUN/operating_point.json's (chosen on validation) or 0.5, and its ``window`` /
    ``overlap`` the segmentation windows that threshold was chosen for, when the file records them.
    ``runtime``: ``"torch"`` (the PyTorch model) or ``"packed"`` (bit-packed, :func:`_packed`)."""
    from crackscope.engine.runs import model_classes

    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    path, source = resolve(path, "classifier")
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
    return TileClassifier(
        _packed(path, model, role) if runtime == "packed" else model,
        crack_index=[c.lower() for c in classes].index("crack"),
        channels=int(cfg.data.channels),
        input_size=None if size is None else tuple(np.broadcast_to(size, 2).tolist()),
        batch_size=batch_size,
        tile=tiles.tile if tiles is not None else None,
        threshold=threshold,
        source=source,
        window=window,
        overlap=overlap,
    )


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
