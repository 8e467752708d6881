"""TrainingTask: the Lightning wrapper around any registered model, loss and validation metric.

The model is a plain ``nn.Module`` (usable alone); this class only adds the optimisation loop,
per-epoch reseeding (so a resumed run matches an uninterrupted one), the learning-rate schedule and
metric logging. The validation metric is the pipeline's (segmentation: :class:`SegmentationMetrics`,
classification: :class:`ClassificationMetrics`); the keys it logs as ``val/<key>`` are given with it.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence

import lightning as L
import torch

from crackscope.metrics import SEGMENTATION_VAL_KEYS, SegmentationMetrics


def segmentation_metric(cfg, geometry: dict, classes=None) -> SegmentationMetrics:
    """A fresh validation metric for a segmentation pipeline: confusion counts at the config's
    threshold, and over :data:`~crackscope.metrics.THRESHOLD_GRID` when the run chooses its
    threshold on the validation data (``trainer.choose_threshold``)."""
    from crackscope.metrics import THRESHOLD_GRID

    sweep = THRESHOLD_GRID if getattr(cfg.trainer, "choose_threshold", False) else ()
    return SegmentationMetrics(threshold=cfg.trainer.threshold, sweep=sweep)


def lr_multiplier(
    epoch: int,
    *,
    step_epochs: Sequence[int] | None = None,
    step_factor: float = 0.1,
    decay: str | None = None,
    max_epochs: int = 1,
    decay_steps: int = 20,
    decay_final: float = 1.0,
) -> float:
    """The learning rate of 0-based ``epoch`` as a multiple of the initial one.

    ``step_epochs``: times ``step_factor`` for every listed epoch already reached (``[45]``, 0.1:
    1 for epochs 0..44, 0.1 from epoch 45 on). ``decay="cosine"``: (1 + cos(pi e / E)) / 2;
    ``"linear"``: 1 - e / E, with E = ``max_epochs`` (epoch 0 at the full rate, towards 0 at E).
    ``"exponential-steps"``: ``decay_steps`` equal stages of geometric levels from 1 down to
    ``decay_final``, decay_final ** (k / (decay_steps - 1)) with k = floor(decay_steps e / E) (the
    harmonics paper's "from 0.003 to 0.0001 over 20 steps": 20 stages, decay_final = 1 / 30)."""
    m = step_factor ** sum(1 for s in (step_epochs or ()) if epoch >= s)
    if decay == "cosine":
        m *= 0.5 * (1.0 + math.cos(math.pi * epoch / max_epochs))
    elif decay == "linear":
        m *= max(0.0, 1.0 - epoch / max_epochs)
    elif decay == "exponential-steps":
        if decay_steps > 1:
            k = min(decay_steps * epoch // max_epochs, decay_steps - 1)
            m *= decay_final ** (k / (decay_steps - 1))
    elif decay is not None:
        raise ValueError(f"unknown lr decay {decay!r}")
    return m


class TrainingTask(L.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        loss: torch.nn.Module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        threshold: float = 0.5,
        seed: int = 0,
        lr_plateau_patience: int | None = None,
        lr_plateau_factor: float = 0.1,
        lr_step_epochs: Sequence[int] | None = None,
        lr_step_factor: float = 0.1,
        lr_decay: str | None = None,
        max_epochs: int = 1,
        metric: Callable[[], torch.nn.Module] | None = None,
        logged: Sequence[str] = SEGMENTATION_VAL_KEYS,
    ):
        super().__init__()
        self.model, self.loss_fn = model, loss
        self.lr, self.weight_decay, self.optimizer_name = lr, weight_decay, optimizer
        self.lr_plateau_patience, self.lr_plateau_factor = lr_plateau_patience, lr_plateau_factor
        self.lr_schedule = {
            "step_epochs": list(lr_step_epochs) if lr_step_epochs else None,
            "step_factor": lr_step_factor,
            "decay": lr_decay,
            "max_epochs": max_epochs,
        }
        self.threshold, self.seed = threshold, seed
        metric = metric or (lambda: SegmentationMetrics(threshold=threshold))
        self.val_metrics, self.test_metrics = metric(), metric()
        self.logged = tuple(logged)
        self.train_samples, self.train_seconds = 0, 0.0
        self._t0 = None
        # wall time of the training epochs, data loading and validation included, summed over the
        # sessions of a resumed run (kept in its checkpoints) [s]
        self.fit_seconds, self._fit_mark = 0.0, None

    def forward(self, x):
        return self.model(x)

    @staticmethod
    def _unpack(batch):
        x, mask = batch[0], batch[1]
        lengths = batch[2] if len(batch) > 2 else None
        if mask.dim() == 3:
            mask = mask.unsqueeze(1)
        return x, mask, lengths

    def _add_fit_time(self) -> None:
        if self._fit_mark is not None:
            now = time.perf_counter()
            self.fit_seconds += now - self._fit_mark
            self._fit_mark = now

    def on_train_epoch_end(self):
        self._add_fit_time()
        self._fit_mark = None

    def on_save_checkpoint(self, checkpoint):
        self._add_fit_time()
        checkpoint["crackscope_fit_seconds"] = self.fit_seconds

    def on_load_checkpoint(self, checkpoint):
        self.fit_seconds = float(checkpoint.get("crackscope_fit_seconds", 0.0))

    def on_train_epoch_start(self):
        self._fit_mark = time.perf_counter()
        # Dropout and any other randomness depend on (seed, epoch) only, not on what ran before.
        torch.manual_seed(self.seed * 1_000_003 + self.current_epoch)
        # A step / decay schedule is a LambdaLR that Lightning steps after each epoch's last batch, so a
        # checkpoint written at the epoch's end holds the next epoch's rate. A checkpoint without the
        # scheduler's state (written before crackscope had one, or before the epoch's end) is brought to
        # the epoch here; LambdaLR's rate depends on its epoch only, so that is exact.
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR) and scheduler.last_epoch != self.current_epoch:
            scheduler.last_epoch = self.current_epoch - 1
            with warnings.catch_warnings():  # a step before this epoch's first optimizer step is intended here
                warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
                scheduler.step()

    def on_train_batch_start(self, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        """Forward + backward + optimiser step time, for the training-throughput figure."""
        if self._t0 is not None:
            self.train_seconds += time.perf_counter() - self._t0

    def training_step(self, batch, batch_idx):
        x, mask, _ = self._unpack(batch)
        loss = self.loss_fn(self(x), mask)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0], sync_dist=True)
        self.log(
            "train/lr",
            self.optimizers().param_groups[0]["lr"],
            on_step=False,
            on_epoch=True,
            batch_size=x.shape[0],
            sync_dist=True,
        )
        self.train_samples += x.shape[0]
        return loss

    def validation_step(self, batch, batch_idx):
        x, mask, lengths = self._unpack(batch)
        logits = self(x)
        self.log(
            "val/loss", self.loss_fn(logits, mask), on_epoch=True, prog_bar=True, batch_size=x.shape[0], sync_dist=True
        )
        self.val_metrics.update(logits, mask, lengths)

    def on_validation_epoch_end(self):
        result = self.val_metrics.compute()
        swept = tuple(k for k in ("dsc_best", "threshold_best") if k in result)  # a metric with a threshold sweep
        for key in self.logged + swept:
            # already reduced over every process by the metric: every rank holds the same value
            value = result[key]
            self.log(
                f"val/{key}",
                float("nan") if value is None else float(value),
                prog_bar=key == self.logged[0],
                sync_dist=True,
            )
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        x, mask, lengths = self._unpack(batch)
        self.test_metrics.update(self(x), mask, lengths)

    def configure_optimizers(self):
        opt_cls = torch.optim.AdamW if self.optimizer_name == "adamw" else torch.optim.Adam
        opt = opt_cls(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule["step_epochs"] or self.lr_schedule["decay"]:
            schedule = self.lr_schedule

            def multiplier(epoch: int) -> float:
                return lr_multiplier(epoch, **schedule)

            # lr of 0-based epoch e = lr * lr_multiplier(e), stepped once per epoch (Lightning's "epoch" interval).
            # It takes precedence over lr_plateau_patience (TrainConfig allows only one of them).
            scheduler = torch.optim.lr_scheduler.LambdaLR(opt, multiplier)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        if self.lr_plateau_patience is None:
            return opt
        # the learning rate follows the validation loss (Zhang et al., surface paper, section 4.2)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=self.lr_plateau_factor, patience=self.lr_plateau_patience
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val/loss", "interval": "epoch"}}
