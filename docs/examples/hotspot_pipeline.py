"""A complete trainable pipeline in one module: hot-spot masks in small thermal frames.

This is the worked example of docs/architecture.md. Importing the module registers the pipeline
(one ``register`` call at the bottom); from then on ``crackscope train`` accepts
``pipeline: hotspot`` and ``evaluate``, ``predict``, ``export`` and ``grid`` work on its runs.
tests/engine/test_hotspot_pipeline.py does exactly that through the CLI.

The data is one ``.npz`` file: ``frames`` (N, H, W), the temperature rise above ambient [K] of
each pixel, and ``masks`` (N, H, W), 1 where a defect heats the surface (optional for predict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from crackscope import models
from crackscope.data.splits import split_indices
from crackscope.engine import pipelines
from crackscope.engine.config import DataSpec
from crackscope.engine.data import EpochSeededSampler, SplitDataModule, own_test_part
from crackscope.engine.evaluation import provenance, write_metrics
from crackscope.engine.runs import load_run, run_threshold
from crackscope.errors import InputError
from crackscope.io import atomic_savez
from crackscope.metrics import SEGMENTATION_VAL_KEYS, SegmentationMetrics


# ---- 1. the config's data: section ------------------------------------------------------------
class HotSpotData(DataSpec):
    """``data:`` of a hotspot training config."""

    kind: Literal["hotspot"] = "hotspot"
    frames: Path
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    batch_size: int = 8


def read_frames(path, *, labelled: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(frames (N, 1, H, W) [K], masks (N, 1, H, W) or None) from an .npz; one line if unreadable."""
    try:
        with np.load(path) as f:
            frames = torch.from_numpy(f["frames"]).float()[:, None]
            masks = torch.from_numpy(f["masks"]).float()[:, None] if labelled or "masks" in f else None
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"{path}: not a frames file with 'frames' and 'masks' ({err})") from None
    return frames, masks


# ---- 2. a model, registered by name like every other ---------------------------------------------
@models.register("hotspot_net")
class HotSpotNet(nn.Module):
    """Logistic regression of each pixel on its 3 x 3 neighbourhood: logits (N, 1, H, W)."""

    def __init__(self, in_channels: int = 1, classes: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


# ---- 3. the entry points the registry names (their contract: the Pipeline docstring) ----------
def hotspot_geometry(data_cfg) -> dict:
    return {"in_channels": 1}


def make_hotspot_split(data_cfg, seed: int, run_dir: Path) -> dict:
    frames, _ = read_frames(data_cfg.frames)
    return split_indices(np.arange(len(frames)), data_cfg.split, seed)


class HotSpotDataModule(SplitDataModule):
    def _loader(self, part, train=False):
        frames, masks = read_frames(self.cfg.frames)
        index = torch.as_tensor(self.split[part], dtype=torch.long)
        ds = TensorDataset(frames[index], masks[index])
        sampler = EpochSeededSampler(len(ds), self.seed, dataset=ds) if train else None
        return DataLoader(ds, batch_size=self.cfg.batch_size, sampler=sampler)


def evaluate_frames(run_dir, data, out_dir, *, indices=None, extra=None) -> dict:
    """Pixel metrics of a run on a frames file (its test part when it is the training file)."""
    cfg, model, _ = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    frames, masks = read_frames(data)
    subset = "given frames" if indices is not None else "all frames"
    if indices is None:
        indices = own_test_part(run_dir, Path(data).resolve() == Path(cfg.data.frames).resolve(), by="indices")
        subset = "test split" if indices is not None else subset
    if indices is not None:
        frames, masks = frames[indices], masks[indices]
    metric = SegmentationMetrics(threshold=threshold, sync_on_compute=False)
    with torch.no_grad():
        metric.update(model(frames), masks)
    scores = metric.compute()
    result = {k: float(scores[k]) for k in ("dsc", "iou", "precision", "recall", "accuracy")}
    result.update(provenance(cfg, run_dir, data=data, subset=subset, n_samples=len(frames), threshold=threshold))
    write_metrics(out_dir, {**result, **(extra or {})})
    return result


def finish_hotspot_training(run_dir, cfg, split, extra) -> dict:
    return evaluate_frames(run_dir, cfg.data.frames, run_dir, indices=split["test"], extra=extra)


def evaluate_hotspot(run_dir, data, out_dir, format=None) -> dict:
    return evaluate_frames(run_dir, data, out_dir)


def report_hotspot(result: dict, out_dir) -> list[str]:
    return [f"DSC {result['dsc']:.4f}  IoU {result['iou']:.4f}  ({result['n_samples']} frames, {result['subset']})"]


def predict_hotspot(run_dir, data, out_dir, log=None) -> str:
    cfg, model, _ = load_run(run_dir)
    threshold = run_threshold(run_dir, cfg)
    frames, _ = read_frames(data, labelled=False)
    with torch.no_grad():
        probability = torch.sigmoid(model(frames))[:, 0].numpy()
    path = atomic_savez(Path(out_dir) / "predictions.npz", probability=probability, mask=probability > threshold)
    return f"predictions: {path}"


def hotspot_onnx_inputs(cfg, geometry: dict, batch: int):
    """(batch, 1, H, W) frames of any size: a 3 x 3 convolution has no fixed input size."""
    return "image", [(batch, 1, 16, 16), (1, 1, 24, 20)], {0: "batch", 2: "height", 3: "width"}


# ---- 4. one register() call -------------------------------------------------------------------------
pipelines.register(
    pipelines.Pipeline(
        name="hotspot",
        summary="hot-spot masks in thermal frames (the worked example of docs/architecture.md)",
        task="segmentation",
        data_config=HotSpotData,
        data_help="an .npz of frames and masks",
        predict_help="an .npz of frames",
        geometry=hotspot_geometry,
        split=make_hotspot_split,
        datamodule=HotSpotDataModule,
        metric=pipelines.Lazy("crackscope.engine.module:segmentation_metric"),
        logged=SEGMENTATION_VAL_KEYS,
        monitor="val/dsc",
        finish_training=finish_hotspot_training,
        evaluate=evaluate_hotspot,
        report=report_hotspot,
        predict=predict_hotspot,
        onnx_inputs=hotspot_onnx_inputs,
    )
)
