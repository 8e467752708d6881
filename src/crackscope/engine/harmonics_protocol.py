"""The harmonics paper's repeated re-split protocol: every single-harmonic, data-, feature- and
decision-level method per sensor, and the two multi-sensor fusions, over R random re-splits.

Paper: "Multi-Harmonic Nonlinear Ultrasonic Fusion with Deep Learning for Subtle Parameter
Identification of Micro-Crack Groups", sections 3.1-3.6 (Figures 8 and 11). Usage::

    from crackscope.engine.harmonics_protocol import run_harmonics_study
    run_harmonics_study("h.zarr", "study/", resplits=100, epochs=600, seed=0, sensors="a,b,c")

or ``crackscope harmonics-study STORE --out DIR``. The methods, every choice the paper leaves open
(with the measurements behind it) and the output layout are in ``docs/harmonics_pipeline.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crackscope.config import validate
from crackscope.data.splits import stratified_resplit
from crackscope.errors import InputError, require_positive_int
from crackscope.io import atomic_write_text
from crackscope.physics.harmonics_config import HARMONIC_LENGTH, LABEL_NAMES, SENSOR_NAMES

PROTOCOL_FORMAT = "crackscope.harmonics_study/1"
LR_START, LR_END, LR_STEPS = 3e-3, 1e-4, 20
PROB_FLOOR = 1e-100
TIE = 1e-9  # accuracy differences below this are ties
CLASSES = len(LABEL_NAMES)
INITS = ("default", "paper")
CNN2D_LR_SCALE = 0.1

# method -> (registered model, in_channels, harmonic channels fed to it)
TRAINED: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "h2": ("harmonic_cnn1d", 1, (0,)),
    "h3": ("harmonic_cnn1d", 1, (1,)),
    "data_cnn2d": ("harmonic_cnn2d", 2, (0, 1)),
    "data_cnn1d": ("harmonic_cnn1d", 2, (0, 1)),
    "feature": ("harmonic_feature_fusion", 2, (0, 1)),
}
DECISION = ("ds_classic", "ds_sensitivity")
SENSOR_METHODS = (*TRAINED, *DECISION)
MULTI_METHODS = ("multi_ds_classic", "multi_conflict_weighted")
MULTI = "multi"
METHOD_TITLES = {
    "h2": "single 2nd harmonic (1-D CNN)",
    "h3": "single 3rd harmonic (1-D CNN)",
    "data_cnn2d": "data-level: stacked 2-D CNN",
    "data_cnn1d": "data-level: 2-channel 1-D CNN",
    "feature": "feature-level: summed FC outputs",
    "ds_classic": "decision-level: classic Dempster h2 ⊕ h3",
    "ds_sensitivity": "decision-level: sensitivity-weighted DS",
    "multi_ds_classic": "multi-sensor: classic Dempster of sensors",
    "multi_conflict_weighted": "multi-sensor: conflict-weighted DS",
}


# ---- settings ---------------------------------------------------------------------------------


def parse_sensors(sensors: str | Sequence[str], available: Sequence[str] | None = SENSOR_NAMES) -> tuple[str, ...]:
    """('a', 'b', 'c') from "a,b,c" or a sequence, in the order of ``available``; InputError for
    unknown (not in ``available``; None accepts any name, in the given order), repeated or no sensors."""
    items = [s.strip() for s in sensors.split(",")] if isinstance(sensors, str) else [str(s).strip() for s in sensors]
    items = [s for s in items if s]
    if not items:
        raise InputError(
            "--sensors must name at least one sensor" + ("" if available is None else f" of {', '.join(available)}")
        )
    if len(set(items)) != len(items):
        raise InputError(f"--sensors names a sensor twice: {','.join(items)}")
    if available is None:
        return tuple(items)
    for s in items:
        if s not in available:
            raise InputError(f"--sensors: unknown sensor {s!r}; choose from {', '.join(available)}")
    return tuple(sorted(items, key=list(available).index))


class StudySettings(BaseModel):
    """Everything besides the store and the number of re-splits that determines a re-split's result.

    Validated like every crackscope config (unknown keys refused); build it with
    :func:`study_settings` for one-line :class:`InputError` messages naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(600, ge=1, description="training epochs of every network")
    seed: int = Field(0, ge=0, description="random seed: re-split r and its initial weights depend on (seed, r)")
    sensors: tuple[str, ...] = SENSOR_NAMES
    batch_size: int = Field(32, ge=1)
    fractions: tuple[float, float, float] = Field((0.6, 0.2, 0.2), description="train / validation / test")
    lr_start: float = Field(LR_START, gt=0)
    lr_end: float = Field(LR_END, gt=0)
    lr_steps: int = Field(LR_STEPS, ge=1)
    prob_floor: float = Field(PROB_FLOOR, gt=0, lt=1e-20)
    init: Literal["default", "paper"] = Field("default", description="PyTorch's initialisation or the paper's")
    cnn2d_lr_scale: float = Field(CNN2D_LR_SCALE, gt=0, le=1)

    @field_validator("sensors", mode="before")
    @classmethod
    def _sensors(cls, v):
        return parse_sensors(v, available=None)

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v):
        if any(not (0 < f < 1) for f in v) or abs(sum(v) - 1) > 1e-9:
            raise ValueError("must be three numbers in (0, 1) summing to 1")
        return v

    @field_validator("lr_end")
    @classmethod
    def _lr_end(cls, v, info):
        start = info.data.get("lr_start")
        if start is not None and v > start:
            raise ValueError(f"must satisfy lr_end <= lr_start (lr_start {start})")
        return v


def study_settings(source: str = "harmonics study", **settings) -> StudySettings:
    """:class:`StudySettings` from keywords; InputError ``source: key: message (got value)`` for bad ones."""
    return validate(StudySettings, settings, source)


# ---- learning rate, split, scaling --------------------------------------------------------------


def learning_rate(
    epoch: int, epochs: int, lr_start: float = LR_START, lr_end: float = LR_END, steps: int = LR_STEPS
) -> float:
    """The paper's schedule: level k = floor(steps * epoch / epochs), lr = lr_start (lr_end/lr_start)^(k/(steps-1))
    (``lr_multiplier(decay="exponential-steps")`` of the shared schedule module)."""
    from crackscope.engine.module import lr_multiplier

    if not 0 <= epoch < epochs:
        raise InputError(f"epoch {epoch} is outside 0..{epochs - 1}")
    return lr_start * lr_multiplier(
        epoch, decay="exponential-steps", max_epochs=epochs, decay_steps=steps, decay_final=lr_end / lr_start
    )


def resplit_indices(
    labels: np.ndarray, fractions: Sequence[float], seed: int, r: int, label_names: Sequence[str] = LABEL_NAMES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) sorted index arrays of re-split ``r``:
    :func:`crackscope.data.splits.stratified_resplit` drawn with ``default_rng(SeedSequence([seed, r]))``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, r]))
    split = stratified_resplit(labels, fractions, rng, label_names)
    return tuple(np.asarray(split[k], dtype=np.int64) for k in ("train", "val", "test"))  # type: ignore[return-value]


def channel_scale(x_train: np.ndarray) -> np.ndarray:
    """Per-channel divisor: max |x| over the training samples and time, shape (1, C, 1); 1 for an all-zero channel."""
    peak = np.abs(x_train).max(axis=(0, 2), keepdims=True).astype(np.float64)
    return np.where(peak > 0, peak, 1.0)


def as_bpa(p: np.ndarray, floor: float = PROB_FLOOR) -> np.ndarray:
    """Probabilities (N, K) floored at ``floor`` and renormalised: a Bayesian mass with no exact zero."""
    p = np.maximum(np.asarray(p, dtype=np.float64), floor)
    return p / p.sum(axis=-1, keepdims=True)


def smoothed_accuracy(correct: int, total: int) -> float:
    """(correct + 1) / (total + 2): in (0, 1), so no harmonic gets a veto in the sensitivity-weighted rule."""
    return (correct + 1.0) / (total + 2.0)


# ---- training ---------------------------------------------------------------------------------


def train_classifier(
    model,
    x,
    y,
    *,
    epochs: int,
    batch_size: int = 32,
    lr_start: float = LR_START,
    lr_end: float = LR_END,
    lr_steps: int = LR_STEPS,
    generator=None,
) -> float:
    """Train ``model`` in place on tensors x (n, C, L), y (n,) with softmax-MSE and Adam (lr by
    :func:`learning_rate`); returns the last epoch's mean loss."""
    import torch

    from crackscope import losses

    loss_fn = losses.create("softmax_mse")
    opt = torch.optim.Adam(model.parameters(), lr=lr_start)
    n = int(x.shape[0])
    bs = min(batch_size, n)
    model.train()
    last = math.nan
    for epoch in range(epochs):
        lr = learning_rate(epoch, epochs, lr_start, lr_end, lr_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        order = torch.randperm(n, generator=generator) if bs < n else torch.arange(n)
        total = 0.0
        for start in range(0, n, bs):
            idx = order[start : start + bs].to(x.device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        last = total / n
    model.eval()
    return last


def predict_proba(model, x, batch: int = 256) -> np.ndarray:
    """Softmax probabilities (n, K), float64, computed from the logits in float64."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, int(x.shape[0]), batch):
            outs.append(torch.softmax(model(x[start : start + batch]).double(), dim=1).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, model.classes))


def model_seed(seed: int, resplit: int, sensor: int, method: str) -> int:
    """The torch seed of one model of one re-split; ``sensor`` is the sensor's index in the data
    (so the seed does not depend on which other sensors are studied)."""
    state = np.random.SeedSequence([seed, resplit, sensor, list(TRAINED).index(method)])
    return int(state.generate_state(1, dtype=np.uint64)[0] & ((1 << 63) - 1))


# ---- decision-level fusion ----------------------------------------------------------------------


def fuse_decisions(
    probs: Mapping[str, Mapping[str, np.ndarray]], accuracies: Mapping[str, Sequence[float]], floor: float = PROB_FLOOR
) -> dict[str, dict[str, np.ndarray]]:
    """Decision-level masses from the h2 / h3 softmax outputs of each sensor.

    ``probs[s] = {"h2": (N, K), "h3": (N, K)}``; ``accuracies[s] = (acc_h2, acc_h3)`` in [0, 1].
    Returns ``{s: {"ds_classic", "ds_sensitivity"}}`` and, for >= 2 sensors,
    ``{"multi": {"multi_ds_classic", "multi_conflict_weighted"}}``, each (N, K).
    """
    from crackscope.fusion import combine_dempster, conflict_weighted_combination, sensitivity_weighted_combination

    out: dict[str, dict[str, np.ndarray]] = {}
    for s, p in probs.items():
        p2, p3 = as_bpa(p["h2"], floor), as_bpa(p["h3"], floor)
        out[s] = {
            "ds_classic": combine_dempster(p2, p3, tol=0.0),
            "ds_sensitivity": sensitivity_weighted_combination([p2, p3], list(accuracies[s]), tol=0.0),
        }
    if len(probs) >= 2:
        per_sensor = [as_bpa(out[s]["ds_sensitivity"], floor) for s in probs]
        out[MULTI] = {
            "multi_ds_classic": combine_dempster(*per_sensor, tol=0.0),
            "multi_conflict_weighted": conflict_weighted_combination(per_sensor, tol=0.0),
        }
    return out


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """(classes, classes) counts, rows true labels (scikit-learn's ``confusion_matrix``)."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, y_pred, labels=range(classes)).astype(np.int64)


# ---- store ------------------------------------------------------------------------------------


@dataclass
class StudyData:
    harmonics: np.ndarray  # (N, S, 2, L) float32: sample, sensor, (2nd, 3rd harmonic), time
    labels: np.ndarray  # (N,) int64 index into label_names
    identity: dict
    sensor_names: tuple[str, ...] = SENSOR_NAMES
    label_names: tuple[str, ...] = LABEL_NAMES


def load_study_data(path: str | Path, manifest: str = "manifest.csv") -> StudyData:
    """A finished harmonics store, or a folder of measured signals with ``manifest`` (see
    :func:`study_data_from_signals`); InputError for anything else."""
    path = Path(path)
    if path.is_dir() and not (path / "zarr.json").exists() and (path / manifest).is_file():
        return study_data_from_signals(path, manifest)
    if path.is_dir() and not (path / "zarr.json").exists():
        raise InputError(
            f"{path} is not a crackscope harmonics store (no zarr.json) nor a folder of measured "
            f"signals (no {manifest})"
        )
    return load_store_data(path)


def study_data_from_signals(root: str | Path, manifest: str = "manifest.csv") -> StudyData:
    """Measured recordings (:class:`crackscope.data.harmonic_signals.HarmonicSignalDataset`, channels
    h2 and h3, resampled to 4760) as study data: every sample needs every sensor of the manifest,
    one label per sample; labels and sensors keep the dataset's (sorted) order."""
    from crackscope.data.harmonic_signals import HarmonicSignalDataset

    ds = HarmonicSignalDataset(root, manifest, length=HARMONIC_LENGTH, channels=("h2", "h3"))
    sensors = tuple(ds.sensors)
    samples = list(dict.fromkeys(sample for sample, _ in ds.keys))
    at = {key: i for i, key in enumerate(ds.keys)}
    harmonics = np.empty((len(samples), len(sensors), 2, HARMONIC_LENGTH), dtype=np.float32)
    labels = np.empty(len(samples), dtype=np.int64)
    for n, sample in enumerate(samples):
        missing = [s for s in sensors if (sample, s) not in at]
        if missing:
            raise InputError(
                f"{ds.manifest_path.name}: sample {sample!r} has no recordings of sensor "
                f"{', '.join(missing)} (every sample needs sensors {', '.join(sensors)})"
            )
        targets = {int(ds.targets[at[sample, s]]) for s in sensors}
        if len(targets) > 1:
            raise InputError(
                f"{ds.manifest_path.name}: sample {sample!r} has different labels for different sensors "
                f"({', '.join(ds.labels[t] for t in sorted(targets))})"
            )
        labels[n] = targets.pop()
        for k, s in enumerate(sensors):
            harmonics[n, k] = ds.signals[at[sample, s]]
    digest = hashlib.sha256(harmonics.tobytes() + labels.tobytes()).hexdigest()[:16]
    identity = {
        "format": "measured signals",
        "root": str(Path(root).resolve()),
        "n_samples": len(samples),
        "sensors": list(sensors),
        "labels": list(ds.labels),
        "data_sha256_16": digest,
    }
    return StudyData(harmonics, labels, identity, sensors, tuple(ds.labels))


def load_store_data(store: str | Path) -> StudyData:
    """Harmonics and labels of a finished harmonics store; InputError for anything unusable."""
    from crackscope.data.harmonics_store import open_harmonics_store

    store = Path(store)
    group = open_harmonics_store(store)
    done = np.asarray(group["done"][:]).astype(bool)
    if not done.all():
        raise InputError(
            f"{store}: only {int(done.sum())} of {done.size} samples are finished; "
            "re-run 'crackscope simulate harmonics' with the same options to finish the store"
        )
    labels = np.asarray(group["label"][:]).astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= CLASSES))
    if bad.size:
        raise InputError(f"{store}: sample {int(bad[0])} has label {int(labels[bad[0]])}, not one of 0..{CLASSES - 1}")
    harmonics = np.asarray(group["harmonics"][:], dtype=np.float32)
    if harmonics.ndim != 4 or harmonics.shape[1:3] != (len(SENSOR_NAMES), 2) or harmonics.shape[0] != labels.size:
        raise InputError(f"{store}: harmonics array has shape {harmonics.shape}, expected (N, 3, 2, L)")
    finite = np.isfinite(harmonics)
    if not finite.all():
        i, s, h, t = (int(v) for v in np.argwhere(~finite)[0])
        n_bad = int((~finite.all(axis=(1, 2, 3))).sum())
        raise InputError(
            f"{store}: the harmonics hold NaN/Inf (first at sample {i}, sensor {SENSOR_NAMES[s]}, "
            f"harmonic h{h + 2}, time {t}; {n_bad} sample{'s' if n_bad != 1 else ''} affected)"
        )
    attrs = dict(group.attrs)
    cfg_digest = hashlib.sha256(json.dumps(attrs.get("config"), sort_keys=True).encode()).hexdigest()[:16]
    identity = {
        "format": attrs.get("format"),
        "simulator": attrs.get("simulator"),
        "n_samples": int(labels.size),
        "seed": attrs.get("seed"),
        "config_sha256_16": cfg_digest,
    }
    return StudyData(harmonics, labels, identity)


# ---- one re-split -----------------------------------------------------------------------------


def run_resplit(
    data: StudyData,
    settings: StudySettings,
    r: int,
    *,
    device: str = "cpu",
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Train and evaluate every method on re-split ``r``; a JSON-ready record."""
    import torch

    from crackscope import models

    t0 = time.perf_counter()
    train, val, test = resplit_indices(data.labels, settings.fractions, settings.seed, r, data.label_names)
    y = data.labels
    y_train = torch.as_tensor(y[train], device=device)
    record: dict = {
        "resplit": r,
        "n_train": int(train.size),
        "n_val": int(val.size),
        "n_test": int(test.size),
        "test_indices": test.tolist(),
        "accuracy": {},
        "val_accuracy": {},
        "weights": {},
        "confusion": {},
        "train_seconds": {},
        "final_loss": {},
    }
    probs_test: dict[str, dict[str, np.ndarray]] = {}
    length = data.harmonics.shape[-1]
    classes = len(data.label_names)
    for s in settings.sensors:
        sensor = data.sensor_names.index(s)
        x_all = data.harmonics[:, sensor]  # (N, 2, L)
        scaled = (x_all / channel_scale(x_all[train])).astype(np.float32)
        xs = {
            part: torch.as_tensor(scaled[idx], device=device)
            for part, idx in (("train", train), ("val", val), ("test", test))
        }
        acc: dict[str, float] = {}
        val_acc: dict[str, float] = {}
        probs_test[s] = {}
        for method, (name, in_ch, chans) in TRAINED.items():
            tm = time.perf_counter()
            seed = model_seed(settings.seed, r, sensor, method)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = models.create(name, in_channels=in_ch, length=length, classes=classes, init=settings.init)
            model = model.to(device)
            gen = torch.Generator().manual_seed(seed)
            ch = list(chans)
            scale = settings.cnn2d_lr_scale if name == "harmonic_cnn2d" else 1.0
            loss = train_classifier(
                model,
                xs["train"][:, ch],
                y_train,
                epochs=settings.epochs,
                batch_size=settings.batch_size,
                lr_start=scale * settings.lr_start,
                lr_end=scale * settings.lr_end,
                lr_steps=settings.lr_steps,
                generator=gen,
            )
            p_test = predict_proba(model, xs["test"][:, ch])
            pred = p_test.argmax(axis=1)
            acc[method] = float((pred == y[test]).mean())
            record["confusion"][f"{s}/{method}"] = confusion(y[test], pred, classes).tolist()
            record["train_seconds"][f"{s}/{method}"] = round(time.perf_counter() - tm, 3)
            record["final_loss"][f"{s}/{method}"] = loss
            log(
                f"  re-split {r}, sensor {s}, {method}: test accuracy {acc[method]:.3f}, final loss {loss:.4f}, "
                f"{record['train_seconds'][f'{s}/{method}']:.1f} s"
            )
            if method in ("h2", "h3"):
                p_val = predict_proba(model, xs["val"][:, ch])
                correct = int((p_val.argmax(axis=1) == y[val]).sum())
                val_acc[method] = correct / val.size
                probs_test[s][method] = p_test
                record["weights"].setdefault(s, [None, None])[0 if method == "h2" else 1] = smoothed_accuracy(
                    correct, int(val.size)
                )
        record["accuracy"][s] = acc
        record["val_accuracy"][s] = val_acc
    fused = fuse_decisions(probs_test, record["weights"], settings.prob_floor)
    for group, masses in fused.items():
        record["accuracy"].setdefault(group, {})
        for method, m in masses.items():
            pred = np.asarray(m).argmax(axis=1)
            record["accuracy"][group][method] = float((pred == y[test]).mean())
            record["confusion"][f"{group}/{method}"] = confusion(y[test], pred, classes).tolist()
    floored = np.mean(
        [(np.asarray(p) < settings.prob_floor).mean() for per in probs_test.values() for p in per.values()]
    )
    record["floored_fraction"] = float(floored)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record


# ---- the study --------------------------------------------------------------------------------


def study_layout(out: str | Path) -> dict[str, Path]:
    """Where a study directory keeps its outputs (all JSON and Markdown written atomically):

    * ``identity`` -- ``study.json``: format, store identity and settings; a re-run with others is refused;
    * ``resplits`` -- ``resplits/rNNN.json`` (:func:`resplit_path`), one per finished re-split: test
      accuracies of every method, validation accuracies, sensitivity weights, confusion matrices,
      split sizes and test indices, times; finished ones are skipped on re-run (resume);
    * ``results`` -- ``results.json``: mean ± sample std per method and sensor, summed confusion of the
      best method, the ordering check (:func:`summarize`);
    * ``table`` -- ``table.md``: the paper's Figure 8 / 11 layout (:func:`format_table`);
    * ``confusion`` -- ``confusion.png``: the best method's confusion matrix summed over the re-splits.
    """
    out = Path(out)
    return {
        "identity": out / "study.json",
        "resplits": out / "resplits",
        "results": out / "results.json",
        "table": out / "table.md",
        "confusion": out / "confusion.png",
    }


def study_identity(data: StudyData, settings: StudySettings) -> dict:
    return {
        "format": PROTOCOL_FORMAT,
        "store": data.identity,
        "settings": settings.model_dump(mode="json"),
        "normalisation": "per (sensor, harmonic): divide by max |x| over the re-split's training samples",
        "loss": "softmax_mse",
        "optimizer": "Adam",
    }


def _check_out(out: Path, identity: dict) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    path = study_layout(out)["identity"]
    if path.exists():
        try:
            known = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"--out {out}: study.json is unreadable ({err}); use a new directory") from None
        if known != identity:
            keys = sorted(
                k
                for k in set(known.get("settings", {})) | set(identity["settings"])
                if known.get("settings", {}).get(k) != identity["settings"].get(k)
            )
            if known.get("store") != identity["store"]:
                keys.insert(0, "store")
            raise InputError(
                f"--out {out} holds a study with other settings ({', '.join(keys) or 'format'}); "
                "use a new directory or the same options"
            )
    else:
        atomic_write_text(path, json.dumps(identity, indent=2) + "\n")


def resplit_path(out: str | Path, r: int) -> Path:
    return study_layout(out)["resplits"] / f"r{r:03d}.json"


def run_harmonics_study(
    store: str | Path,
    out: str | Path,
    *,
    resplits: int = 100,
    epochs: int = 600,
    seed: int = 0,
    sensors: str | Sequence[str] | None = None,
    batch_size: int = 32,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    init: str = "default",
    device: str = "cpu",
    threads: int | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Run (or resume) the protocol; writes every output and returns results.json's content plus the table.

    ``store``: a harmonics store or a folder of measured signals with manifest.csv
    (:func:`load_study_data`); ``sensors=None`` studies every sensor of the data.
    """
    resplits = require_positive_int("--resplits", resplits)
    settings = study_settings(
        epochs=epochs,
        seed=seed,
        sensors=SENSOR_NAMES if sensors is None else sensors,
        batch_size=batch_size,
        fractions=tuple(fractions),
        init=init,
    )
    if threads is not None:
        import torch

        torch.set_num_threads(require_positive_int("--threads", threads))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine")
    elif device != "cpu":
        raise InputError(f"--device must be cpu or cuda, got {device!r}")
    data = load_study_data(store)
    settings = settings.model_copy(
        update={"sensors": parse_sensors(data.sensor_names if sensors is None else sensors, data.sensor_names)}
    )
    # refuse labels with too few samples now, before anything is written
    stratified_resplit(data.labels, settings.fractions, np.random.default_rng(0), data.label_names)
    out = Path(out)
    _check_out(out, study_identity(data, settings))
    ran = skipped = 0
    for r in range(resplits):
        path = resplit_path(out, r)
        if path.exists():
            skipped += 1
            continue
        record = run_resplit(data, settings, r, device=device, log=log)
        atomic_write_text(path, json.dumps(record) + "\n")
        ran += 1
        best = {g: max(v.values()) for g, v in record["accuracy"].items()}
        log(
            f"re-split {r + 1}/{resplits}: {record['seconds']:.1f} s; best test accuracy "
            + ", ".join(f"{g} {a:.3f}" for g, a in best.items())
        )
    if skipped:
        log(f"{skipped} re-split{'s' if skipped != 1 else ''} already finished (skipped)")
    return report_study(out, data, resplits=resplits, extra={"ran_now": ran, "skipped": skipped})


def report_study(
    out: str | Path,
    data: StudyData | str | Path | None = None,
    *,
    resplits: int | None = None,
    extra: Mapping | None = None,
) -> dict:
    """Summarise a study directory's finished re-splits (``resplits=None``: every ``rNNN.json`` there;
    an integer: exactly r = 0 .. resplits-1) and (re)write results.json, table.md and confusion.png
    (:func:`study_layout`); returns results.json's content plus ``table`` and ``out_dir``.

    ``data`` (study data or its store / folder) gives the store identity, label counts and names;
    without it they come from the directory's earlier results.json (or study.json). ``extra`` is
    added to results.json (the run adds ``ran_now`` and ``skipped``)."""
    out = Path(out)
    layout = study_layout(out)
    try:
        identity = json.loads(layout["identity"].read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{out} is not a harmonics study directory ({layout['identity'].name}: {err})") from None
    settings = study_settings(f"{layout['identity']}: settings", **identity.get("settings", {}))
    if resplits is None:
        indices = sorted(
            int(p.stem[1:]) for p in layout["resplits"].glob("r[0-9][0-9][0-9]*.json") if p.stem[1:].isdigit()
        )
    else:
        indices = list(range(require_positive_int("--resplits", resplits)))
    missing = [r for r in indices if not resplit_path(out, r).is_file()]
    if not indices or missing:
        raise InputError(
            f"{out}: no finished re-split"
            if not indices
            else f"{out}: re-split {missing[0]} is not finished (resume the study first)"
        )
    records = [json.loads(resplit_path(out, r).read_text()) for r in indices]
    if data is not None and not isinstance(data, StudyData):
        data = load_study_data(data)
    results = summarize(records, settings, data)
    if data is None:
        earlier = json.loads(layout["results"].read_text()) if layout["results"].is_file() else {}
        classes = len(records[0]["confusion"][next(iter(records[0]["confusion"]))])
        names = earlier.get("label_names") or (
            list(LABEL_NAMES) if classes == CLASSES else [str(k) for k in range(classes)]
        )
        results.update(store=identity.get("store"), label_counts=earlier.get("label_counts"), label_names=names)
    results.update(extra or {})
    table = format_table(results)
    atomic_write_text(layout["results"], json.dumps(results, indent=2) + "\n")
    atomic_write_text(layout["table"], table)
    plot_confusion(results, layout["confusion"])
    return {**results, "table": table, "out_dir": str(out)}


# ---- aggregation and outputs ------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "n": int(v.size),
        "min": float(v.min()),
        "median": float(np.median(v)),
        "max": float(v.max()),
    }


def summarize(records: list[dict], settings: StudySettings, data: StudyData | None = None) -> dict:
    """Mean ± std per (sensor or 'multi', method), summed confusion matrices, best method, ordering check."""
    groups = [*settings.sensors, *([MULTI] if len(settings.sensors) >= 2 else [])]
    accuracy: dict[str, dict[str, dict]] = {}
    confusions: dict[str, np.ndarray] = {}
    for g in groups:
        methods = MULTI_METHODS if g == MULTI else SENSOR_METHODS
        accuracy[g] = {m: _stats([rec["accuracy"][g][m] for rec in records]) for m in methods}
        for m in methods:
            confusions[f"{g}/{m}"] = np.sum([rec["confusion"][f"{g}/{m}"] for rec in records], axis=0)
    best = max(((g, m) for g in groups for m in accuracy[g]), key=lambda gm: accuracy[gm[0]][gm[1]]["mean"])
    seconds = [rec["seconds"] for rec in records]
    weights = {
        s: {
            "h2": _stats([rec["weights"][s][0] for rec in records]),
            "h3": _stats([rec["weights"][s][1] for rec in records]),
        }
        for s in settings.sensors
    }
    return {
        "format": PROTOCOL_FORMAT,
        "settings": settings.model_dump(mode="json"),
        "store": data.identity if data is not None else None,
        "label_counts": (
            {n: int((data.labels == k).sum()) for k, n in enumerate(data.label_names)} if data is not None else None
        ),
        "n_resplits": len(records),
        "split_sizes": {k: records[0][k] for k in ("n_train", "n_val", "n_test")},
        "accuracy": accuracy,
        "sensitivity_weights": weights,
        "best": {
            "group": best[0],
            "method": best[1],
            "mean": accuracy[best[0]][best[1]]["mean"],
            "confusion": confusions[f"{best[0]}/{best[1]}"].tolist(),
        },
        "ordering": ordering_check(accuracy, settings.sensors, records),
        "seconds_per_resplit": _stats(seconds),
        "seconds_each": seconds,
        "floored_fraction": float(np.mean([rec.get("floored_fraction", 0.0) for rec in records])),
        "label_names": list(LABEL_NAMES if data is None else data.label_names),
    }


def ordering_check(accuracy: dict, sensors: Sequence[str], records: Sequence[dict] = ()) -> dict:
    """The issue's target order on mean accuracies: per sensor h2 < ds_classic < ds_sensitivity;
    then (the sensor with the best mean) ds_sensitivity < multi_ds_classic < multi_conflict_weighted.

    With ``records``, each link also gets its paired per-re-split difference (same test samples):
    mean, standard error, and how many re-splits it went up / stayed / went down.
    """
    mean = lambda g, m: accuracy[g][m]["mean"]  # noqa: E731
    links: list[tuple[str, tuple[str, str], tuple[str, str]]] = []
    for s in sensors:
        links.append((f"{s}: h2 < ds_classic", (s, "h2"), (s, "ds_classic")))
        links.append((f"{s}: ds_classic < ds_sensitivity", (s, "ds_classic"), (s, "ds_sensitivity")))
    if MULTI in accuracy:
        best = max(sensors, key=lambda s: mean(s, "ds_sensitivity"))
        links.append(
            ("best sensor ds_sensitivity < multi_ds_classic", (best, "ds_sensitivity"), (MULTI, "multi_ds_classic"))
        )
        links.append(
            (
                "multi_ds_classic < multi_conflict_weighted",
                (MULTI, "multi_ds_classic"),
                (MULTI, "multi_conflict_weighted"),
            )
        )
    # a tie (equal means, e.g. the same number of correct test samples) does not hold
    checks = {name: mean(*hi) - mean(*lo) > TIE for name, lo, hi in links}
    paired = {}
    if records:
        for name, (g1, m1), (g2, m2) in links:
            d = np.array([rec["accuracy"][g2][m2] - rec["accuracy"][g1][m1] for rec in records])
            paired[name] = {
                "mean_difference": float(d.mean()),
                "standard_error": float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else None,
                "up": int((d > 0).sum()),
                "same": int((d == 0).sum()),
                "down": int((d < 0).sum()),
            }
    return {"checks": checks, "all_hold": all(checks.values()), "paired": paired}


def _pct(st: dict) -> str:
    return f"{100 * st['mean']:.2f} ± {100 * st['std']:.2f}"


def format_table(results: dict) -> str:
    """Figure 8 layout (methods x sensors) and Figure 11 layout (multi-sensor rules), mean ± std in %."""
    acc = results["accuracy"]
    sensors = results["settings"]["sensors"]
    st = results["settings"]
    sizes = results["split_sizes"]
    lines = [
        f"Test accuracy [%], mean ± std over {results['n_resplits']} re-split(s); {st['epochs']} epochs, "
        f"batch {st['batch_size']}, train/val/test = {sizes['n_train']}/{sizes['n_val']}/{sizes['n_test']} "
        f"samples, seed {st['seed']}, init {st['init']}, 2-D CNN learning rate x {st['cnn2d_lr_scale']:g}.",
        "",
        "| method | " + " | ".join(f"sensor {s}" for s in sensors) + " |",
        "|---|" + "---:|" * len(sensors),
    ]
    for m in SENSOR_METHODS:
        lines.append(f"| {METHOD_TITLES[m]} | " + " | ".join(_pct(acc[s][m]) for s in sensors) + " |")
    if MULTI in acc:
        lines += ["", f"| multi-sensor method | sensors {' + '.join(sensors)} |", "|---|---:|"]
        for m in MULTI_METHODS:
            lines.append(f"| {METHOD_TITLES[m]} | {_pct(acc[MULTI][m])} |")
    b = results["best"]
    lines += [
        "",
        f"Best: {METHOD_TITLES[b['method']]}"
        + ("" if b["group"] == MULTI else f" (sensor {b['group']})")
        + f", {100 * b['mean']:.2f} %.",
        "",
        "Target ordering (means; paired difference over the re-splits, percentage points ± standard error, "
        "re-splits up / same / down):",
        "",
    ]
    paired = results["ordering"].get("paired", {})
    for k, v in results["ordering"]["checks"].items():
        line = f"* {k}: {'holds' if v else 'does not hold'}"
        if k in paired:
            pr = paired[k]
            se = "" if pr["standard_error"] is None else f" ± {100 * pr['standard_error']:.2f}"
            line += f" ({100 * pr['mean_difference']:+.2f}{se}; {pr['up']} / {pr['same']} / {pr['down']})"
        lines.append(line)
    return "\n".join(lines) + "\n"


def plot_confusion(results: dict, path: str | Path) -> Path:
    """12 x 12 confusion matrix of the best method, summed over the re-splits (rows: true labels)."""
    from crackscope.figures import plot_confusion_matrix

    b = results["best"]
    where = "" if b["group"] == MULTI else f", sensor {b['group']}"
    title = (
        f"{METHOD_TITLES[b['method']]}{where}\n{100 * b['mean']:.2f} % mean test accuracy, "
        f"summed over {results['n_resplits']} re-split(s)"
    )
    return plot_confusion_matrix(
        b["confusion"],
        results["label_names"],
        path,
        title,
        xlabel="identified",
        ylabel="true",
        colorbar=True,
        hide_zeros=True,
        fontsize=7,
        dpi=120,
    )
