"""train(): one run of any registered model on its data, with per-epoch checkpoints and resume."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from crackscope.engine import pipelines
from crackscope.engine.config import TrainConfig, dump_config
from crackscope.engine.module import TrainingTask
from crackscope.engine.runs import build_loss, build_model, init_weights_file, load_weights
from crackscope.errors import InputError
from crackscope.io import atomic_write_text


def train(
    cfg: TrainConfig, *, resume: bool = False, progress: bool | None = None, callbacks: Sequence[Callback] = ()
) -> Path:
    """Train ``cfg`` into ``cfg.run_dir``; returns the run directory (with metrics.json).

    ``resume`` continues the run from ``checkpoints/last.ckpt`` (or starts it when there is none yet);
    ``progress`` shows Lightning's progress bar (default: when stderr is a terminal). ``callbacks`` are
    Lightning callbacks added after the run's own; Lightning runs every ``Checkpoint`` callback last, in
    list order, so one of that class sees the epoch's ``last.ckpt`` already written (the resume tests
    kill the process from such a callback).
    """
    _quiet_lightning()
    pipeline = pipelines.get(cfg.pipeline)
    geometry, model, loss = _prepare(cfg, resume)
    split = _start_run_directory(cfg, pipeline, geometry)
    task = _training_task(cfg, pipeline, geometry, split, model, loss)
    validates = bool(split["val"])  # data.val_fraction 0: no validation, the last epoch is kept
    best, own_callbacks = _callbacks(cfg, validates)
    last = cfg.run_dir / "checkpoints" / "last.ckpt"
    resuming = resume and last.exists()
    with _callers_deterministic_mode():
        trainer = _trainer(cfg, [*own_callbacks, *callbacks], _loggers(cfg, resuming), validates, progress)
        trainer.fit(
            task,
            datamodule=pipeline.datamodule(cfg.data, cfg.seed, split),
            ckpt_path=str(last) if resuming else None,
            weights_only=True,
        )
    trainer.strategy.barrier("crackscope: fit finished on every rank")
    if trainer.is_global_zero:  # rank 0 alone writes the weights and evaluates
        _finish(cfg, pipeline, split, task, trainer, best, last)
    return cfg.run_dir


def _is_child_rank() -> bool:
    """True in the extra processes Lightning's DDP launcher starts (they re-run this command)."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK"))


def _prepare(cfg: TrainConfig, resume: bool):
    """Validate everything that can be validated before anything is written; the model and loss to train."""
    import importlib.util

    for flag, module, extra in (("tensorboard", "tensorboard", "tensorboard"), ("mlflow", "mlflow", "mlflow")):
        if getattr(cfg.trainer, flag) and importlib.util.find_spec(module) is None:
            raise InputError(f"trainer.{flag}=true needs the {extra} extra: pip install 'crackscope[{extra}]'")
    geometry = pipelines.get(cfg.pipeline).geometry(cfg.data)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg, geometry)
    if cfg.trainer.init_weights is not None:  # fine-tuning; on resume the checkpoint's weights win
        load_weights(model, init_weights_file(cfg.trainer.init_weights), f"the {cfg.model.name} of this config")
    loss = build_loss(cfg)
    run_dir = cfg.run_dir
    if _is_child_rank():  # rank 0 has checked and written the run directory already
        return geometry, model, loss
    if (run_dir / "config.yaml").exists() and not resume:
        raise InputError(f"run directory {run_dir} already exists; use --resume to continue it or choose another name")
    if resume and (run_dir / "config.yaml").exists():
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        saved.pop("geometry", None)
        try:  # through the current schema, so keys added since (with their defaults) compare equal
            saved = dump_config(TrainConfig.model_validate(saved))
        except ValueError:
            pass  # an unreadable saved config differs
        if _without_runtime_knobs(saved) != _without_runtime_knobs(dump_config(cfg)):
            raise InputError(f"--resume: the config differs from the one saved in {run_dir / 'config.yaml'}")
    return geometry, model, loss


def _start_run_directory(cfg: TrainConfig, pipeline, geometry: dict) -> dict:
    """The run's train/val/test split; rank 0 writes it to split.json and the config to config.yaml."""
    run_dir = cfg.run_dir
    split = pipeline.split(cfg.data, cfg.data_split_seed, run_dir)
    if not _is_child_rank():
        run_dir.mkdir(parents=True, exist_ok=True)
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in geometry.items()}
        atomic_write_text(
            run_dir / "config.yaml", yaml.safe_dump({**dump_config(cfg), "geometry": plain}, sort_keys=False)
        )
        atomic_write_text(run_dir / "split.json", json.dumps(split))
    return split


def _training_task(cfg: TrainConfig, pipeline, geometry: dict, split: dict, model, loss) -> TrainingTask:
    """The Lightning module: the model (compiled if asked), its loss, optimizer, lr schedule and metrics."""
    t = cfg.trainer
    if t.compile:  # in place: parameter names, state_dict and checkpoints stay those of the plain model
        model.compile()
    return TrainingTask(
        model,
        loss,
        lr=cfg.optimizer.lr,
        weight_decay=cfg.optimizer.weight_decay,
        optimizer=cfg.optimizer.name,
        threshold=t.threshold,
        seed=cfg.seed,
        lr_plateau_patience=t.lr_plateau_patience,
        lr_plateau_factor=t.lr_plateau_factor,
        lr_step_epochs=t.lr_step_epochs,
        lr_step_factor=t.lr_step_factor,
        lr_decay=t.lr_decay,
        max_epochs=t.max_epochs,
        metric=lambda: pipeline.metric(cfg, geometry, split.get("classes")),
        logged=pipelines.resolve(pipeline.logged),
    )


class _EpochCheckpoint(ModelCheckpoint):
    """The writer of checkpoints/epochNNN.ckpt and last.ckpt at the end of every training epoch."""

    @property
    def state_key(self) -> str:
        # The key of its state inside the checkpoints, unchanged since the class had another name: a run
        # checkpointed by an earlier crackscope resumes with its list of kept epochs, and the key never
        # equals that of the best-epoch ModelCheckpoint.
        return "_FaultAfterCheckpoint" + super().state_key.removeprefix(type(self).__qualname__)


def _callbacks(cfg: TrainConfig, validates: bool) -> tuple[ModelCheckpoint, list[Callback]]:
    """The best-epoch checkpoint writer and the run's callbacks: checkpoints (and early stopping if asked)."""
    ckpt_dir = cfg.run_dir / "checkpoints"
    every_epoch = _EpochCheckpoint(
        dirpath=ckpt_dir,
        filename="epoch{epoch:03d}",
        auto_insert_metric_name=False,
        save_last=True,
        every_n_epochs=1,
        save_on_train_epoch_end=True,
        **_keep(cfg.trainer.keep_epoch_checkpoints),
    )
    best = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=cfg.monitor, mode="max", save_top_k=1, auto_insert_metric_name=False
    )
    callbacks: list[Callback] = [best, every_epoch] if validates else [every_epoch]
    if cfg.trainer.early_stopping_patience is not None:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=cfg.trainer.early_stopping_patience))
    return best, callbacks


def _loggers(cfg: TrainConfig, resuming: bool) -> list:
    """CSV logs (and TensorBoard, MLflow if asked); a resumed run logs into logs/resumeN/ so the CSV of the
    earlier epochs is kept, not rewritten."""
    run_dir = cfg.run_dir
    segment = "" if not resuming else f"resume{sum(1 for p in (run_dir / 'logs').glob('resume*')) + 1}"
    loggers = [L.pytorch.loggers.CSVLogger(str(run_dir), name="logs", version=segment)]
    if cfg.trainer.tensorboard:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(str(run_dir), name="logs", version="tensorboard"))
    if cfg.trainer.mlflow:
        loggers.append(L.pytorch.loggers.MLFlowLogger(experiment_name=cfg.name, save_dir=str(run_dir / "mlruns")))
    return loggers


def _trainer(
    cfg: TrainConfig, callbacks: list[Callback], loggers: list, validates: bool, progress: bool | None
) -> L.Trainer:
    """The Lightning trainer: devices and DDP, precision, deterministic kernels, batch limits."""
    t = cfg.trainer
    distributed = t.devices * t.num_nodes > 1
    # "warn": deterministic kernels where torch has them (all that the crackscope models use on CPU);
    # an op without one (on some GPUs) warns instead of failing.
    return L.Trainer(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=t.precision,
        logger=loggers,
        callbacks=callbacks,
        deterministic="warn",
        num_sanity_val_steps=0,
        enable_progress_bar=sys.stderr.isatty() if progress is None else progress,
        enable_model_summary=False,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=1.0 if validates else 0,
        log_every_n_steps=1,
    )


@contextmanager
def _callers_deterministic_mode():
    """Give the caller back its own torch deterministic-algorithms setting, which Lightning switches on globally."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _finish(
    cfg: TrainConfig, pipeline, split: dict, task: TrainingTask, trainer: L.Trainer, best: ModelCheckpoint, last: Path
) -> None:
    """Write model.safetensors (the best or the last epoch, as configured) and the pipeline's evaluation
    on the test part (metrics.json, figures)."""
    from safetensors.torch import save_file

    run_dir = cfg.run_dir
    kept = best.best_model_path if cfg.trainer.weights == "best" and best.best_model_path else str(last)
    save_file(checkpoint_weights(kept), str(run_dir / "model.safetensors"))
    extra = {
        "parameters": int(sum(p.numel() for p in task.model.parameters())),
        "epochs": cfg.trainer.max_epochs,
        "epochs_run": int(trainer.current_epoch),
        "best_epoch": _epoch_of(best.best_model_path),
        "weights_epoch": _epoch_of(kept),  # the epoch (0-based) whose weights model.safetensors holds
        "train_samples_per_s": task.train_samples / task.train_seconds if task.train_seconds else None,
        # wall time of all training epochs, data and validation included, over resumed sessions [s]
        "fit_seconds": round(task.fit_seconds, 1),
        "dataset": {k: len(split[k]) for k in ("train", "val", "test")},
        "hardware": _hardware(cfg),
    }
    pipeline.finish_training(run_dir, cfg, split, extra)


def _quiet_lightning() -> None:
    """Keep Lightning's banners and tips out of the user's terminal; warnings and errors still show."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def checkpoint_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's weights in a training checkpoint, named as in ``model.safetensors``."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("model."): v.contiguous() for k, v in state.items() if k.startswith("model.")}


# Keys that change where and how fast a run trains, not what it learns: a run may be resumed with
# other values (e.g. started on a GPU, finished on a CPU). The sample order depends only on
# (seed, epoch), and so do the classify pipeline's augmentation draws, whatever the number of loader
# workers; the surface pipeline's kornia augmentation draws from torch's generator, whose stream
# does depend on the workers (other random flips, not another model).
RUNTIME_KNOBS = {"trainer": ("compile", "accelerator"), "data": ("num_workers",)}


def _without_runtime_knobs(config: dict) -> dict:
    """A config without the keys of RUNTIME_KNOBS."""
    return {
        **config,
        **{
            section: {k: v for k, v in config.get(section, {}).items() if k not in keys}
            for section, keys in RUNTIME_KNOBS.items()
        },
    }


def _keep(k: int | None) -> dict:
    """Every epoch's checkpoint (k = None) or only the newest k."""
    return {"save_top_k": -1} if k is None else {"save_top_k": k, "monitor": "epoch", "mode": "max"}


def _epoch_of(path: str) -> int | None:
    """The epoch (0-based) a checkpoint was written after; None for no checkpoint (an empty path)."""
    if not path:
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def _hardware(cfg) -> str:
    """The GPU or CPU the run trained on, for metrics.json."""
    from crackscope.provenance import cpu_name, gpu_name

    gpu = gpu_name() if cfg.trainer.accelerator in ("gpu", "cuda") else None
    return gpu or f"{cpu_name()} CPU, {torch.get_num_threads()} threads"
