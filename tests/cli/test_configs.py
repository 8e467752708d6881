"""Every shipped config validates and reproduces its preset."""

from pathlib import Path

import pytest
import yaml

from crackscope.physics import PlateConfig
from crackscope.physics.config import load_plate_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "wavefield").glob("simulate_*.yaml"))


# simulate_<preset>.yaml is the preset itself; these are presets with a few fields changed
VARIANTS = {
    "small_t250": ("small", {"n_time": 250, "record_every": 4}),
    "small_multi_t250": ("small-multi", {"n_time": 250, "record_every": 4}),
    "paper_multi": ("paper-multi", {}),
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_simulation_configs_equal_their_presets(path):
    preset, changes = VARIANTS.get(path.stem.removeprefix("simulate_"), (path.stem.removeprefix("simulate_"), {}))
    assert load_plate_config(None, path) == PlateConfig.preset(preset, **changes)


def test_configs_exist():
    assert {p.stem for p in CONFIGS} >= {"simulate_paper", "simulate_small", "simulate_tiny"}


def test_overrides_beat_the_file_which_beats_the_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\nn_time: 50\ncracks: {count_max: 2}\n")
    cfg = load_plate_config(None, path, ["n_time=60"])
    assert cfg.n_time == 60 and cfg.cracks.count_max == 2
    assert cfg.width == PlateConfig.preset("tiny").width and cfg.cracks.length_um_max == 3.2


TRAIN_CONFIGS = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "configs").glob("*/*.yaml")
    if not p.stem.startswith("simulate_") and "grid" not in p.stem
)
PIPELINE_OF_FOLDER = {"binary": "classify"}  # configs/binary/ holds the classification (AOIE-Net) runs


# configs/cascade/ holds the two models of the tile cascade
def _expected_pipeline(path: Path) -> str:
    """The cascade's configs are named for their role: tile_classifier_* classify tiles, segmenter_*
    segment; the other folders are named for their pipeline."""
    if path.parent.name == "cascade":
        return "classify" if path.stem.startswith("tile_classifier") else "surface"
    return PIPELINE_OF_FOLDER.get(path.parent.name, path.parent.name)


GRIDS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*/*grid*.yaml"))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_training_configs_validate(path):
    from crackscope.engine.config import load_train_config

    cfg = load_train_config(path)
    assert cfg.pipeline == _expected_pipeline(path)
    assert cfg.data.kind == cfg.pipeline


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_grids_expand(path):
    from crackscope.engine.grid import expand

    grid, configs = expand(path)
    assert len(configs) == len(grid.runs or [1]) * len(grid.seeds) or grid.axes
    assert len({c.name for c in configs}) == len(configs)


def test_surface_config_follows_the_paper_protocol():
    from crackscope.engine.config import load_train_config

    cfg = load_train_config(Path(__file__).resolve().parents[2] / "configs" / "surface" / "unet_cbam.yaml")
    # Zhang et al. section 4.2: Adam 1e-3, LR on validation-loss plateau, early stopping, batch 32, <= 100 epochs,
    # loss 0.7 CE + 0.3 Dice
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (
        "adam",
        1e-3,
        32,
        100,
    )
    assert cfg.trainer.lr_plateau_patience and cfg.trainer.early_stopping_patience and cfg.data.augment
    assert (cfg.loss.name, cfg.loss.kwargs) == ("ce_dice", {"alpha": 0.7}) and cfg.model.name == "unet_cbam"


@pytest.mark.parametrize("name, model", [("aoie_net_neu", "aoie_net_resnet20"), ("resnet20_neu", "resnet20")])
def test_neu_configs_follow_the_paper_protocol(name, model):
    from crackscope.engine.config import load_train_config

    cfg = load_train_config(Path(__file__).resolve().parents[2] / "configs" / "binary" / f"{name}.yaml")
    # Wu et al. section 4: NEU-CLS split 8:2, 90 epochs, lr 1e-3 divided by 10 after 45 epochs
    assert cfg.pipeline == "classify" and cfg.model.name == model and cfg.loss.name == "cross_entropy"
    assert (cfg.data.format, tuple(cfg.data.split), cfg.data.channels) == ("neu-cls", (0.8, 0.2), 1)
    assert (cfg.optimizer.lr, cfg.trainer.max_epochs) == (1e-3, 90)
    assert (cfg.trainer.lr_step_epochs, cfg.trainer.lr_step_factor) == ([45], 0.1)
    assert cfg.monitor == "val/accuracy" and cfg.trainer.lr_plateau_patience is None
    assert cfg.split_seed == 0  # other training seeds keep the shipped models' test split


def test_cifar10_config_follows_the_paper_protocol():
    from crackscope.engine.config import load_train_config

    cfg = load_train_config(Path(__file__).resolve().parents[2] / "configs" / "binary" / "aoie_net_cifar10.yaml")
    # Wu et al. section 4.1: CIFAR-10 with random cropping and horizontal flipping, 300 epochs, batch 128,
    # initial lr 1e-3 decaying linearly to 0; trained on the training set, scored on the test set
    assert (cfg.data.format, cfg.data.channels, cfg.data.augment) == ("cifar10", 3, "crop_flip")
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.optimizer.lr) == (300, 128, 1e-3)
    assert cfg.trainer.lr_decay == "linear" and cfg.trainer.lr_step_epochs is None
    assert cfg.data.val_fraction == 0 and cfg.trainer.weights == "last"
    assert cfg.model.name == "aoie_net_resnet20"


def test_cascade_models_share_one_image_split():
    from crackscope.engine.config import load_train_config

    folder = Path(__file__).resolve().parents[2] / "configs" / "cascade"
    tiles = load_train_config(folder / "tile_classifier_deepcrack.yaml")
    seg = load_train_config(folder / "segmenter_deepcrack.yaml")
    # the same seed, root and three fractions give the same split by source photo (tests/data/test_tiles.py)
    assert (tiles.data.format, seg.data.format) == ("deepcrack-tiles", "deepcrack")
    assert tiles.seed == seg.seed and tiles.data.root == seg.data.root
    assert tuple(tiles.data.split) == tuple(seg.data.split) and len(seg.data.split) == 3
    assert tiles.model.name == "aoie_net_resnet20"
    # the shipped classifier was trained with this config's tiling and labels (64 crack pixels,
    # chosen on the validation images: docs/cascade.md)
    shipped = yaml.safe_load(
        (folder.parents[1] / "src/crackscope/weights/deepcrack/tile_classifier/config.yaml").read_text()
    )
    assert tiles.data.tiles.model_dump() == shipped["data"]["tiles"]
    assert shipped["model"] == tiles.model.model_dump(exclude_unset=True)
    assert seg.data.size is None  # the cascade segments tiles at their own resolution
