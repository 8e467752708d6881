"""train(): one run of any registered model on its data, with per-epoch checkpoints and resume."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from crackscope.engine import pipelines
from crackscope.engine.config import TrainConfig, dump_config
from crackscope.engine.module import TrainingTask
from crackscope.engine.runs import build_loss, build_model
from crackscope.errors import InputError
from crackscope.io import atomic_write_text

_FAULT_ENV = "CRACKSCOPE_FAULT_KILL_AFTER_EPOCHS"  # test hook: SIGKILL once this many epochs are checkpointed


class _FaultAfterCheckpoint(ModelCheckpoint):
    """A last.ckpt writer that, for tests, kills the process right after writing epoch ``n``."""

    def __init__(self, kill_after: int | None, **kw):
        super().__init__(**kw)
        self.kill_after = kill_after

    def on_train_epoch_end(self, trainer, pl_module):
        super().on_train_epoch_end(trainer, pl_module)
        if self.kill_after is not None and trainer.current_epoch + 1 >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


def _is_child_rank() -> bool:
    """True in the extra processes Lightning's DDP launcher starts (they re-run this command)."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK"))


def _prepare(cfg: TrainConfig, resume: bool):
    """Validate everything that can be validated before anything is written."""
    import importlib.util

    for flag, module, extra in (("tensorboard", "tensorboard", "tensorboard"), ("mlflow", "mlflow", "mlflow")):
        if getattr(cfg.trainer, flag) and importlib.util.find_spec(module) is None:
            raise InputError(f"trainer.{flag}=true needs the {extra} extra: pip install 'crackscope[{extra}]'")
    geometry = pipelines.get(cfg.pipeline).geometry(cfg.data)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg, geometry)
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


def _quiet_lightning() -> None:
    """Keep Lightning's banners and tips out of the user's terminal; warnings and errors still show."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool | None = None) -> Path:
    """Train ``cfg`` into ``cfg.run_dir``; returns the run directory (with metrics.json)."""
    from safetensors.torch import save_file

    _quiet_lightning()
    pipeline = pipelines.get(cfg.pipeline)
    geometry, model, loss = _prepare(cfg, resume)
    run_dir = cfg.run_dir
    split = pipeline.split(cfg.data, cfg.data_split_seed, run_dir)
    if not _is_child_rank():
        run_dir.mkdir(parents=True, exist_ok=True)
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in geometry.items()}
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump({**dump_config(cfg), "geometry": plain},
                                                                  sort_keys=False))
        atomic_write_text(run_dir / "split.json", json.dumps(split))

    t = cfg.trainer
    if t.compile:  # in place: parameter names, state_dict and checkpoints stay those of the plain model
        model.compile()
    task = TrainingTask(model, loss, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
                        optimizer=cfg.optimizer.name, threshold=t.threshold, seed=cfg.seed,
                        lr_plateau_patience=t.lr_plateau_patience, lr_plateau_factor=t.lr_plateau_factor,
                        lr_step_epochs=t.lr_step_epochs, lr_step_factor=t.lr_step_factor, lr_decay=t.lr_decay,
                        max_epochs=t.max_epochs,
                        metric=lambda: pipeline.metric(cfg, geometry, split.get("classes")), logged=pipeline.logged)
    ckpt_dir = run_dir / "checkpoints"
    kill = os.environ.get(_FAULT_ENV)
    every_epoch = _FaultAfterCheckpoint(int(kill) if kill else None, dirpath=ckpt_dir, filename="epoch{epoch:03d}",
                                        auto_insert_metric_name=False, save_last=True, every_n_epochs=1,
                                        save_on_train_epoch_end=True, **_keep(cfg.trainer.keep_epoch_checkpoints))
    validates = bool(split["val"])  # data.val_fraction 0: no validation, the last epoch is kept
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.monitor, mode="max", save_top_k=1,
                           auto_insert_metric_name=False)
    callbacks = [best, every_epoch] if validates else [every_epoch]
    if cfg.trainer.early_stopping_patience is not None:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=cfg.trainer.early_stopping_patience))
    last = ckpt_dir / "last.ckpt"
    resuming = resume and last.exists()
    # A resumed run logs into logs/resumeN/ so the CSV of the earlier epochs is kept, not rewritten.
    segment = "" if not resuming else f"resume{sum(1 for p in (run_dir / 'logs').glob('resume*')) + 1}"
    loggers = [L.pytorch.loggers.CSVLogger(str(run_dir), name="logs", version=segment)]
    if cfg.trainer.tensorboard:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(str(run_dir), name="logs", version="tensorboard"))
    if cfg.trainer.mlflow:
        loggers.append(L.pytorch.loggers.MLFlowLogger(experiment_name=cfg.name, save_dir=str(run_dir / "mlruns")))
    distributed = cfg.trainer.devices * cfg.trainer.num_nodes > 1
    deterministic_before = (torch.are_deterministic_algorithms_enabled(),
                            torch.is_deterministic_algorithms_warn_only_enabled())
    # "warn": deterministic kernels where torch has them (all that the crackscope models use on CPU);
    # an op without one (on some GPUs) warns instead of failing.
    trainer = L.Trainer(
        max_epochs=cfg.trainer.max_epochs, accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes, strategy="ddp" if distributed else "auto", precision=cfg.trainer.precision,
        logger=loggers, callbacks=callbacks, deterministic="warn", num_sanity_val_steps=0,
        enable_progress_bar=sys.stderr.isatty() if progress is None else progress, enable_model_summary=False,
        limit_train_batches=cfg.trainer.limit_train_batches, limit_val_batches=1.0 if validates else 0,
        log_every_n_steps=1,
    )
    ckpt_path = str(last) if resuming else None
    datamodule = pipeline.datamodule(cfg.data, cfg.seed, split)
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    finally:  # Lightning switches deterministic mode on globally; give the caller back its own setting
        torch.use_deterministic_algorithms(deterministic_before[0], warn_only=deterministic_before[1])
    trainer.strategy.barrier("crackscope: fit finished on every rank")
    if not trainer.is_global_zero:  # rank 0 alone writes the weights and evaluates
        return run_dir

    kept = best.best_model_path if cfg.trainer.weights == "best" and best.best_model_path else str(last)
    save_file(checkpoint_weights(kept), str(run_dir / "model.safetensors"))
    extra = {
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "epochs": cfg.trainer.max_epochs,
        "epochs_run": int(trainer.current_epoch),
        "best_epoch": _epoch_of(best.best_model_path),
        "weights_epoch": _epoch_of(kept),  # the epoch (0-based) whose weights model.safetensors holds
        "train_samples_per_s": task.train_samples / task.train_seconds if task.train_seconds else None,
        "dataset": {k: len(split[k]) for k in ("train", "val", "test")},
        "hardware": _hardware(cfg),
    }
    pipeline.evaluate(run_dir, cfg, split, extra)
    return run_dir


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
    return {**config, **{section: {k: v for k, v in config.get(section, {}).items() if k not in keys}
                         for section, keys in RUNTIME_KNOBS.items()}}


def _keep(k: int | None) -> dict:
    """Every epoch's checkpoint (k = None) or only the newest k."""
    return {"save_top_k": -1} if k is None else {"save_top_k": k, "monitor": "epoch", "mode": "max"}


def _epoch_of(path: str) -> int | None:
    if not path:
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def _hardware(cfg) -> str:
    if cfg.trainer.accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import platform

    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
