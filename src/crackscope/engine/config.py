"""Training run configuration (YAML in, validated object out), shared by every pipeline.

The ``data:`` section is the pipeline's own: :class:`TrainConfig` validates it with the class its
registry entry names (``Pipeline.data_config``, a :class:`DataSpec`), so a new pipeline brings its
data settings without touching this module."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationInfo, field_validator, model_validator

from crackscope.config import apply_overrides, load_yaml, validate
from crackscope.data.formats import CLASSIFY_FORMATS, SURFACE_FORMATS
from crackscope.engine import pipelines


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Named(BaseModel):
    """A registry entry by name; every other key is passed to its constructor."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelSpec(_Named):
    pass


class LossSpec(_Named):
    pass


class DataSpec(_Strict):
    """The base of every pipeline's ``data:`` settings; ``kind`` is the pipeline's name."""

    kind: str


class WavefieldData(DataSpec):
    """A wave-field store split into train/validation/test by sample index (seeded)."""

    kind: Literal["wavefield"] = "wavefield"
    store: Path
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    subtract_reference: bool = False
    normalize: Literal["per_sample", "global"] | None = "global"
    augment: bool = Field(
        False,
        description="reflect half of the training plates about the mid-line through the "
        "source (exact for the simulator's symmetric plates; crackscope.data.wavefield_dataset)",
    )
    batch_size: int = Field(16, ge=1)
    num_workers: int = Field(0, ge=0)
    stream_plates: int | None = Field(
        None,
        ge=1,
        description="train on this many fresh plates per epoch, simulated with the store's settings while "
        "the model trains (no plate seen twice; crackscope.data.wavefield_stream), instead of the store's "
        "training split; validation and test stay the store's. null: read the store",
    )
    train_plates: int | None = Field(
        None,
        ge=1,
        description="train on only the first N plates of the training split (learning curves, reduced "
        "study protocols); validation and test are the uncapped split's, so runs with different N are "
        "scored on the same plates. null: the whole training split",
    )

    @field_validator("split")
    @classmethod
    def _split(cls, v):
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0:
            raise ValueError(f"split fractions must be non-negative, sum to 1 and train > 0, got {list(v)}")
        return v


class _ImageData(DataSpec):
    """What every image dataset config shares: resizing, augmentation and loading."""

    size: int | tuple[int, int] | None = None
    augment: bool = True
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        sides = (v,) if isinstance(v, int) else (v or ())
        if any(int(s) < 1 for s in sides):
            raise ValueError(f"size must be positive, got {v}")
        return v


class SurfaceSource(_Strict):
    """One dataset of a multi-source surface config, read in its own layout."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="prefix of its stems: '<name>/<stem>'")
    root: Path
    format: Literal[SURFACE_FORMATS]


class SurfaceData(_ImageData):
    """A surface-defect image/mask dataset (``crackscope.data.surface``) split by a stratified seed
    (DeepCrack: by source photo, so crops of one photo share a part; Crack500: by burst).

    ``root`` + ``format``: one dataset. ``sources``: several, each ``{name, root, format}`` in its own
    layout, read as one (stems ``<name>/<stem>``); each source is split on its own with the run's
    seed and ``split`` -- exactly the split a one-source run of that dataset gets -- and the parts
    are joined, so validation and test hold images of every source.
    ``size``: ``null`` pads each image by reflection to a multiple of 32 (no resampling); an integer
    or [height, width] resizes every image (predictions are brought back to the original size).
    ``augment``: ``true``: joint flips / rotation and brightness / contrast (/ saturation) jitter;
    ``camera``: :class:`~crackscope.data.camera_augment.CameraAugment` -- random ``crop`` x ``crop``
    training crops with scale, illumination, colour, blur, noise and JPEG variation (``camera``:
    its options). Validation and test images are always whole, one per batch when ``crop`` is set.
    """

    kind: Literal["surface"] = "surface"
    root: Path | None = None
    format: Literal[SURFACE_FORMATS] = "sd-saliency-900"
    sources: list[SurfaceSource] | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    in_channels: Literal[1, 3] = 1
    augment: bool | Literal["camera"] = True
    crop: int | None = Field(None, ge=8, description="side in pixels of the camera augmentation's training crops")
    camera: dict[str, Any] | None = Field(None, description="options of CameraAugment (augment: camera)")

    _check_split = field_validator("split")(WavefieldData._split.__func__)

    @model_validator(mode="after")
    def _one_root_or_sources(self):
        if (self.root is None) == (self.sources is None):
            raise ValueError("give either data.root (one dataset) or data.sources (several), not both or neither")
        if self.sources is not None:
            names = [s.name for s in self.sources]
            if not names or len(set(names)) != len(names):
                raise ValueError(f"data.sources need distinct names, got {names}")
        if (self.augment == "camera") != (self.crop is not None):
            raise ValueError("augment: camera and crop go together (crop: the training crop side in pixels)")
        if self.camera is not None and self.augment != "camera":
            raise ValueError("data.camera sets the options of augment: camera")
        return self

    @property
    def source_list(self) -> list[tuple[str | None, Path, str]]:
        """``[(name, root, format)]``: the sources, or ``[(None, root, format)]`` for one dataset."""
        if self.sources is None:
            return [(None, self.root, self.format)]
        return [(s.name, s.root, s.format) for s in self.sources]

    def describe(self) -> str:
        """The data's name in reports: the root, or the sources' names joined by '+'."""
        return str(self.root) if self.sources is None else "+".join(s.name for s in self.sources)


class TileSpec(_Strict):
    """How the ``deepcrack-tiles`` format cuts images into classifier tiles (``crackscope.data.tiles``):
    ``tile`` x ``tile`` windows every ``stride`` pixels (null: ``tile``, non-overlapping), the last
    row and column aligned to the image border; a tile with at least ``min_crack_pixels`` crack
    pixels is labelled ``crack``."""

    tile: int = Field(64, ge=1, description="tile side in pixels of the original image")
    stride: int | None = Field(None, ge=1, description="distance between tile starts (null: tile)")
    min_crack_pixels: int = Field(1, ge=1, description="crack pixels that make a tile 'crack'")


class ClassificationData(_ImageData):
    """An image-classification dataset (``crackscope.data.classification``: NEU-CLS, class folders,
    CIFAR-10) split per class (stratified) by the run's seed.

    ``split``: [train, test] (default 8:2, the NEU-CLS protocol of the AOIE-Net paper) or
    [train, val, test]. With two parts the validation set, which selects the best checkpoint and
    drives early stopping / plateau schedules, is carved out of TRAIN: ``val_fraction`` of every
    class of the training part (stratified, same seed), so the test part is exactly the 8:2 test
    part and is never used to choose anything. CIFAR-10 keeps its official test batch as the test
    part (``split`` is not used) and carves ``val_fraction`` out of the training batches.
    ``val_fraction: 0`` holds out nothing (the paper trains on the whole 8:2 training part): no
    validation runs, and the run must keep its last epoch (``trainer.weights: last``) with a
    schedule that needs no validation metric (no plateau schedule, no early stopping).
    ``size``: ``null`` keeps each image's size (NEU-CLS: 200 x 200); an integer or [height, width]
    resizes (bilinear, antialiased). ``channels``: 1 grey (colour -> luminance) or 3 (grey replicated).
    ``augment``: ``true`` (= ``flips_rotations``): random flips and 90-degree rotations of training
    images; ``crop_flip``: the CIFAR recipe (4-pixel zero padding, random crop back to size,
    horizontal flip); ``camera``: flips and rotations, then the photometric changes of another
    camera (crackscope.data.camera_augment: exposure, gamma, contrast, gradient, colour, blur,
    noise, JPEG); drawn from (seed, epoch, image).
    ``deepcrack-tiles``: the crack / no-crack tiles of DeepCrack images (``tiles`` says how they are
    cut; ``size`` resizes each tile). Its split is by source photo (all tiles of an image, and all
    crops of a photo, in one part), the same as the ``deepcrack`` surface split of the same seed and
    fractions; RUN/split.json lists image stems.
    """

    kind: Literal["classify"] = "classify"
    root: Path | None = None
    format: Literal[CLASSIFY_FORMATS] = "auto"
    sources: list[SurfaceSource] | None = Field(
        None,
        description="deepcrack-tiles only, instead of root: the image/mask pairs of several "
        "datasets, each {name, root, format} in its surface layout (deepcrack, crack500, folder); "
        "each is split by its own groups with the run's seed, as a surface run on it is",
    )
    split: tuple[float, float] | tuple[float, float, float] = (0.8, 0.2)
    val_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of the training part held out for "
        "validation when split has two parts; 0: none, the model trains on the whole "
        "training part and keeps its last epoch (trainer.weights: last)",
    )
    channels: Literal[1, 3] = 1
    augment: bool | Literal["flips_rotations", "crop_flip", "camera"] = True
    camera: dict[str, Any] | None = Field(
        None,
        description="options of CameraAugment (augment: camera); p_hard_negative draws hard negatives into "
        "training images, labels unchanged",
    )
    tiles: TileSpec | None = Field(None, description="tiling of the deepcrack-tiles format (null: its defaults)")

    @field_validator("split")
    @classmethod
    def _split(cls, v):
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0 or v[-1] <= 0:
            raise ValueError(
                f"split fractions must be non-negative, sum to 1 and give train and test > 0, got {list(v)}"
            )
        if len(v) == 3 and v[1] <= 0:
            raise ValueError(f"a three-part split needs a validation part > 0, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _val_fraction_or_three_parts(self):
        # a resolved config.yaml lists the default val_fraction next to a three-part split: accept that
        default = type(self).model_fields["val_fraction"].default
        if len(self.split) == 3 and "val_fraction" in self.model_fields_set and self.val_fraction != default:
            raise ValueError(
                "val_fraction applies to a two-part split [train, test]; a three-part split "
                "gives the validation part itself"
            )
        if self.camera is not None and self.augment != "camera":
            raise ValueError("data.camera sets the options of augment: camera")
        refused = [("p_sound", "crack-free crops")]
        if self.format != "deepcrack-tiles":  # crack tiles take their labels from masks: drawn cracks count
            refused.append(("p_synthetic_crack", "drawn cracks"))
        for key, what in refused:
            if self.camera is not None and float(self.camera.get(key, 0.0)) > 0:
                raise ValueError(
                    f"data.camera.{key}: {what} are for segmenters; a classifier's images are labelled "
                    "already (use p_hard_negative)"
                )
        if self.tiles is not None and self.format != "deepcrack-tiles":
            raise ValueError(f"tiles applies to format deepcrack-tiles only (format is {self.format})")
        if (self.root is None) == (self.sources is None):
            raise ValueError("give either data.root (one dataset) or data.sources (several), not both or neither")
        if self.sources is not None:
            if self.format != "deepcrack-tiles":
                raise ValueError(f"data.sources applies to format deepcrack-tiles only (format is {self.format})")
            names = [s.name for s in self.sources]
            if not names or len(set(names)) != len(names):
                raise ValueError(f"data.sources need distinct names, got {names}")
        return self

    @property
    def tile_sources(self) -> list[tuple[str | None, Path, str]]:
        """The image/mask pairs the ``deepcrack-tiles`` format cuts: ``[(name, root, surface format)]``,
        ``[(None, root, "deepcrack")]`` for one root."""
        if self.sources is None:
            return [(None, self.root, "deepcrack")]
        return [(s.name, s.root, s.format) for s in self.sources]

    describe = SurfaceData.describe

    @property
    def has_validation(self) -> bool:
        """False for a two-part split (or CIFAR-10) with ``val_fraction`` 0."""
        return len(self.split) == 3 or self.val_fraction > 0


class OptimizerSpec(_Strict):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class TrainerSpec(_Strict):
    max_epochs: int = Field(50, ge=1)
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "cpu"
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    precision: Literal["32-true", "16-mixed", "bf16-mixed"] = "32-true"
    threshold: float = Field(0.5, gt=0, lt=1, description="probability above which a pixel is a crack")
    choose_threshold: bool = Field(
        False,
        description="choose the crack threshold on the validation split after "
        "training (highest DSC over 0.05, 0.10, ... 0.95) and store it in "
        "RUN/operating_point.json, which evaluate, predict and export use; validation "
        "then also logs val/dsc_best (the default monitor) and val/threshold_best",
    )
    monitor: str | None = Field(
        None,
        description="validation metric that selects the best checkpoint "
        "(maximised); default val/dsc (wave field), val/miou (surface) or "
        "val/accuracy (classify)",
    )
    lr_plateau_patience: int | None = Field(
        None,
        ge=1,
        description="ReduceLROnPlateau on val/loss after this many epochs without improvement (off when null)",
    )
    lr_plateau_factor: float = Field(0.1, gt=0, lt=1)
    lr_step_epochs: list[int] | None = Field(
        None,
        description="multiply the learning rate by lr_step_factor "
        "at the start of each of these epochs (0-based; off when null)",
    )
    lr_step_factor: float = Field(0.1, gt=0, lt=1)
    lr_decay: Literal["cosine", "linear"] | None = Field(
        None, description="decay the learning rate from optimizer.lr towards 0 over max_epochs (off when null)"
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a lower val/loss (off when null)"
    )
    keep_epoch_checkpoints: int | None = Field(
        None,
        ge=1,
        description="keep only the newest k per-epoch "
        "checkpoints (all when null); last.ckpt and best.ckpt are always kept",
    )
    weights: Literal["best", "last"] = Field(
        "best",
        description="what model.safetensors holds: the epoch with the "
        "best monitored validation metric, or the last epoch (a fixed schedule, "
        "for a validation part too small to rank epochs)",
    )
    init_weights: Path | None = Field(
        None,
        description="start from these weights instead of a random initialisation (fine-tuning): a "
        "run directory or model folder with model.safetensors, or a .safetensors file; every tensor "
        "must fit the model. The split, schedule and epochs are this run's own",
    )
    tensorboard: bool = False
    mlflow: bool = False
    limit_train_batches: int | float = 1.0
    compile: bool = Field(
        False,
        description="compile the model with torch.compile (TorchInductor) for training: "
        "fuses element-wise operations: an AOIE-Net training step on a 2-vCPU CPU ran 3.8x (128 px) "
        "to 6.3x (200 px) faster, after a one-off compile of about a minute per input shape; "
        "weight names and checkpoints are those of the plain model",
    )

    @field_validator("lr_step_epochs")
    @classmethod
    def _steps(cls, v):
        if v is not None and (not v or any(e < 1 for e in v) or any(b <= a for a, b in zip(v, v[1:]))):
            raise ValueError(f"lr_step_epochs must be a non-empty, strictly increasing list of epochs >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _one_schedule(self):
        chosen = [k for k in ("lr_plateau_patience", "lr_step_epochs", "lr_decay") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(f"choose one learning-rate schedule: {' and '.join(chosen)} are both set")
        return self


class TrainConfig(_Strict):
    """Everything a training run needs; the resolved copy is written to RUN/config.yaml."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.+-]+$")
    pipeline: str = Field(
        "wavefield",
        description="a pipeline that trains with the engine "
        "(crackscope.engine.pipelines.REGISTRY): wavefield, surface or classify",
    )
    seed: int = Field(0, ge=0)
    split_seed: int | None = Field(
        None,
        ge=0,
        description="seed of the train/validation/test split; null: "
        "``seed``. Fix it to train several seeds on one split (the same test images)",
    )
    out_dir: Path = Path("runs")
    data: SerializeAsAny[DataSpec]
    model: ModelSpec
    loss: LossSpec
    optimizer: OptimizerSpec = OptimizerSpec()
    trainer: TrainerSpec = TrainerSpec()

    @model_validator(mode="before")
    @classmethod
    def _data_kind(cls, raw):
        """``data.kind`` follows ``pipeline`` unless given, so configs need not repeat it."""
        if isinstance(raw, dict) and isinstance(raw.get("data"), dict) and "kind" not in raw["data"]:
            raw = {**raw, "data": {**raw["data"], "kind": raw.get("pipeline", "wavefield")}}
        return raw

    @field_validator("pipeline")
    @classmethod
    def _registered(cls, v):
        if v not in pipelines.trainable():
            raise ValueError(
                f"pipeline {v!r} does not train with 'crackscope train'; choose one of "
                f"{', '.join(pipelines.trainable())}"
            )
        return v

    @field_validator("data", mode="before")
    @classmethod
    def _pipeline_data(cls, v, info: ValidationInfo):
        """The ``data:`` section, validated with the class of the pipeline its ``kind`` names."""
        if isinstance(v, DataSpec):
            return v
        kind = v.get("kind") if isinstance(v, dict) else None
        if kind not in pipelines.trainable():
            if "pipeline" not in info.data:
                return DataSpec.model_construct(kind=str(kind))  # the pipeline's error is the one to read
            raise ValueError(f"data.kind {kind!r} is not a pipeline that trains ({', '.join(pipelines.trainable())})")
        return pipelines.resolve(pipelines.get(kind).data_config).model_validate(v)

    @model_validator(mode="after")
    def _data_matches_pipeline(self):
        if self.data.kind != self.pipeline:
            raise ValueError(f"data.kind={self.data.kind!r} does not match pipeline={self.pipeline!r}")
        if self.trainer.choose_threshold and not pipelines.get(self.pipeline).segments:
            raise ValueError(
                "trainer.choose_threshold applies to the segmentation pipelines "
                f"({', '.join(pipelines.with_task('segmentation'))}), not {self.pipeline!r}"
            )
        if not getattr(self.data, "has_validation", True):
            t = self.trainer
            needs = [
                k
                for k, v in (
                    ("trainer.weights=best", t.weights == "best"),
                    ("trainer.lr_plateau_patience", t.lr_plateau_patience is not None),
                    ("trainer.early_stopping_patience", t.early_stopping_patience is not None),
                )
                if v
            ]
            if needs:
                raise ValueError(
                    f"data.val_fraction 0 leaves no validation images, which {', '.join(needs)} "
                    "needs: keep the last epoch (trainer.weights=last) on a fixed schedule"
                )
        return self

    @property
    def run_dir(self) -> Path:
        return self.out_dir / self.name

    @property
    def monitor(self) -> str:
        if self.trainer.monitor:
            return self.trainer.monitor
        pipeline = pipelines.get(self.pipeline)
        if self.trainer.choose_threshold and pipeline.threshold_monitor:
            return pipeline.threshold_monitor
        return pipeline.monitor

    @property
    def data_split_seed(self) -> int:
        """The seed the data split is drawn from: ``split_seed``, or ``seed`` when it is null."""
        return self.seed if self.split_seed is None else self.split_seed


def load_train_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), base: dict | None = None
) -> TrainConfig:
    """A TrainConfig from a YAML file (and/or a base mapping) plus ``key=value`` overrides. The file
    may be a run's (or shipped model's) config.yaml: the data geometry it also records is left out,
    since training finds it again from the data."""
    data = dict(base or {})
    if path is not None:
        loaded = load_yaml(path)
        loaded.pop("geometry", None)
        data.update(loaded)
    data = apply_overrides(data, list(overrides))
    source = f"config file {path}" if path else "train config"
    return validate(TrainConfig, data, source)


def dump_config(cfg: TrainConfig) -> dict:
    return cfg.model_dump(mode="json")
