"""InspectOptions (crackscope.deploy.inspect_options): every option of ``crackscope inspect-image``
validated once, in one object that the command line, inspect_image, inspect_image_file and
inspect_folder share. Bad values are one line naming them (exit code 2 on the command line), the
command line and the Python API build the same options, and the help shows the model's defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from PIL import Image

import crackscope.deploy.cascade.command as command
from crackscope.cli import app, main
from crackscope.deploy.cascade import InspectOptions, inspect_folder, inspect_image, inspect_image_file
from crackscope.deploy.inspect_options import inspect_options
from crackscope.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "crackscope" / "weights" / "cracks"

# Worked out by hand from `crackscope inspect-image --help` before InspectOptions existed.
DEFAULTS = {
    "tile": None,
    "threshold": None,
    "all_tiles": False,
    "runtime": "auto",
    "mm_per_pixel": None,
    "window": None,
    "overlap": None,
    "batch": 64,
    "follow": 0,
    "follow_threshold": 0.0,
    "scale": 1.0,
    "tta": "none",
}
FLAGS = {
    "tile": "--tile",
    "threshold": "--threshold",
    "all_tiles": "--all-tiles",
    "runtime": "--runtime",
    "mm_per_pixel": "--mm-per-pixel",
    "window": "--window",
    "overlap": "--overlap",
    "batch": "--batch",
    "follow": "--follow",
    "follow_threshold": "--follow-threshold",
    "scale": "--scale",
    "tta": "--tta",
}


def _png(path: Path, h=40, w=50, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


# ---- one line, exit code 2, nothing written --------------------------------------------------------------
BAD = [
    (["--batch", "0"], "error: --batch 0 must be a positive number of windows"),
    (["--tile", "0"], "error: --tile 0 must be a positive number of pixels"),
    (["--follow", "-1"], "error: --follow -1 must be a whole number of rounds, 0 or more"),
    (["--follow-threshold", "1.5"], "error: --follow-threshold 1.5 must be a probability in [0, 1]"),
    (["--window", "-3"], "error: --window -3 must be a positive number of pixels"),
    (["--threshold", "1.01"], "error: --threshold 1.01 must be a probability in [0, 1]"),
    (["--overlap", "0.51"], "error: --overlap 0.51 must be a fraction of the window in [0, 0.5]"),
    (["--scale", "16.5"], "error: --scale 16.5 must be a number in (0, 16] (> 1 enlarges the image)"),
    (["--scale", "-1"], "error: --scale -1.0 must be a number in (0, 16] (> 1 enlarges the image)"),
    (["--mm-per-pixel", "inf"], "error: --mm-per-pixel inf must be a positive number of millimetres per pixel"),
    (["--runtime", "tensorrt"], "error: --runtime 'tensorrt' is not one of auto, torch, packed, onnx"),
    # a bad runtime is refused even when no classifier runs (it used to be ignored with --all-tiles)
    (["--all-tiles", "--runtime", "tensorrt"], "error: --runtime 'tensorrt' is not one of auto, torch, packed, onnx"),
    (
        ["--tile", "0", "--scale", "0"],
        "error: --tile 0 must be a positive number of pixels; --scale 0.0 must be a number in (0, 16] "
        "(> 1 enlarges the image)",
    ),
]


@pytest.mark.parametrize("folder", [False, True], ids=["image", "folder"])
@pytest.mark.parametrize("opts,line", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_a_bad_option_is_one_line_naming_it_exit_2_and_nothing_written(tmp_path, capsys, opts, line, folder):
    image = _png(tmp_path / "images" / "a.png")
    out = tmp_path / "out"
    # the options are checked before the models are loaded: these runs need not exist
    argv = ["inspect-image", str(image.parent if folder else image), "--segmenter", str(tmp_path / "no-seg")]
    argv += ["--classifier", str(tmp_path / "no-clf"), "--out", str(out), *opts]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [line], err
    assert not out.exists()


def test_a_bad_option_from_a_real_process_is_one_line_without_a_traceback(tmp_path, cli):
    done = cli("inspect-image", tmp_path, "--segmenter", tmp_path, "--out", tmp_path / "out", "--batch", "-2")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: --batch -2 must be a positive number of windows"]


def test_the_python_api_names_its_own_keywords(tmp_path):
    image = np.zeros((1, 20, 30), np.float32)
    seg = lambda tiles: tiles[:, 0]  # noqa: E731
    cases = [
        (dict(batch_size=0), "batch_size 0 must be a positive number of windows"),
        (dict(tile=2.5), "tile 2.5 must be a positive number of pixels"),
        (dict(tile=True), "tile True must be a positive number of pixels"),  # not taken as 1
        (dict(scale="big"), "scale 'big' must be a number in (0, 16]"),
        (dict(overlap=float("nan")), "overlap nan must be a fraction of the window in [0, 0.5]"),
    ]
    for keywords, message in cases:
        with pytest.raises(InputError) as err:
            inspect_image(image, None, seg, all_tiles=True, **keywords)
        assert str(err.value).startswith(message), err.value
    with pytest.raises(InputError, match=r"^threshold 2 must be a probability in \[0, 1\]$"):
        inspect_image_file(tmp_path / "a.png", tmp_path, tmp_path / "out", threshold=2)
    with pytest.raises(InputError, match=r"^mm_per_pixel 0 must be a positive number"):
        inspect_folder(tmp_path, tmp_path, tmp_path / "out", mm_per_pixel=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mm_per_pixel'"):
        inspect_image(image, None, seg, all_tiles=True, mm_per_pixel=0.1)  # the command's, not the cascade's
    with pytest.raises(TypeError, match="unexpected keyword argument 'tiles'"):
        inspect_image_file(tmp_path / "a.png", tmp_path, tmp_path / "out", tiles=32)
    with pytest.raises(TypeError, match="InspectOptions"):
        inspect_image(image, None, seg, 32)  # the old positional tile


@pytest.mark.parametrize(
    "name,good,bad",
    [
        ("tile", [1, 7, 2.0], [0, -1, 1.5, True]),
        ("window", [1, 320], [0, 0.5, False]),
        ("batch", [1, 3], [0, -64, True]),
        ("follow", [0, 1, 50], [-1, 1.5, True]),
        ("follow_threshold", [0, 0.1, 1], [-0.1, 1.1, float("nan"), True]),
        ("threshold", [0, 0.0, 0.25, 1, 1.0], [-1e-9, 1.0000001, float("nan"), True]),
        ("overlap", [0, 0.25, 0.5], [-0.01, 0.5000001, float("inf")]),
        ("scale", [1e-6, 0.5, 16, 16.0], [0, -2, 16.0001, float("nan"), float("inf"), False]),
        ("mm_per_pixel", [1e-9, 0.2, 50], [0, -0.2, float("nan"), float("inf")]),
        ("runtime", ["auto", "torch", "packed", "onnx"], ["tensorrt", "Torch", ""]),
        ("tta", ["none", "flip", "d8"], ["Flip", "d4", "", True]),
    ],
)
def test_the_constraints_of_each_option(name, good, bad):
    for value in good:
        assert getattr(InspectOptions.parse({name: value}), name) == value
    for value in bad:
        with pytest.raises(InputError) as err:
            InspectOptions.parse({name: value})
        assert str(err.value).startswith(f"{FLAGS[name]} ") and "\n" not in str(err.value)


def test_the_tilings_bound_on_the_overlap_is_the_options():
    from crackscope.deploy.inspect_options import MAX_OVERLAP
    from crackscope.deploy.tiling import MAX_OVERLAP as TILING_MAX_OVERLAP
    from crackscope.deploy.tiling import overlap_pixels

    assert MAX_OVERLAP == TILING_MAX_OVERLAP == 0.5
    assert overlap_pixels(64, InspectOptions(overlap=0.5).overlap) == 32


def test_the_tta_choices_are_the_flip_modules():
    from typing import get_args

    from crackscope.deploy.inspect_options import Tta
    from crackscope.nn.flip_tta import TTA_MODES

    assert get_args(Tta) == TTA_MODES


def test_the_options_are_frozen_and_take_no_unknown_key():
    options = InspectOptions()
    with pytest.raises(pydantic.ValidationError):
        options.tile = 3
    with pytest.raises(InputError, match="^unknown option --tiles$"):
        InspectOptions.parse({"tiles": 3})


# ---- the command line and the Python API build the same options ----------------------------------------
ARGS = ["--tile", "48", "--threshold", "0.3", "--runtime", "packed", "--mm-per-pixel", "0.2", "--window", "96"]
ARGS += ["--overlap", "0.1", "--batch", "3", "--follow", "2", "--follow-threshold", "0.2", "--scale", "0.8"]
ARGS += ["--tta", "flip"]
KEYWORDS = dict(tile=48, threshold=0.3, runtime="packed", mm_per_pixel=0.2, window=96, overlap=0.1, batch=3, scale=0.8)
KEYWORDS |= {"follow": 2, "follow_threshold": 0.2, "tta": "flip"}


def test_the_command_line_and_the_api_build_the_same_options(tmp_path, monkeypatch, capsys):
    """What reaches the model loading (``command._setup``) from the command line, from keywords
    and from an InspectOptions, for an image and a folder, against the options written out by hand."""
    seen = []

    def setup(segmenter_path, classifier_path, options):
        seen.append((str(segmenter_path), str(classifier_path), options))
        raise InputError("stop here")

    monkeypatch.setattr(command, "_setup", setup)
    image = _png(tmp_path / "images" / "a.png")
    seg, clf, out = tmp_path / "seg", tmp_path / "clf", tmp_path / "out"
    for source in (image, image.parent):
        argv = ["inspect-image", str(source), "--segmenter", str(seg), "--classifier", str(clf), "--out", str(out)]
        assert main(argv) == 2  # every option at its default
        assert main(argv + ARGS) == 2
    for call in (inspect_image_file, inspect_folder):
        source = image if call is inspect_image_file else image.parent
        for kwargs in ({}, KEYWORDS, {"options": InspectOptions(**KEYWORDS)}):
            with pytest.raises(InputError, match="stop here"):
                call(source, seg, out, classifier_path=clf, **kwargs)
        with pytest.raises(InputError, match="stop here"):  # keywords on top of options
            call(source, seg, out, classifier_path=clf, options=InspectOptions(tile=48, batch=5), **KEYWORDS)
    capsys.readouterr()
    assert {(s, c) for s, c, _ in seen} == {(str(seg), str(clf))}
    by_hand = InspectOptions.model_validate(
        {"tile": 48, "threshold": 0.3, "all_tiles": False, "runtime": "packed", "mm_per_pixel": 0.2}
        | {"window": 96, "overlap": 0.1, "batch": 3, "follow": 2, "follow_threshold": 0.2}
        | {"scale": 0.8, "tta": "flip"}
    )
    cli_default, cli_set, cli_folder_default, cli_folder_set = (o for _, _, o in seen[:4])
    assert cli_default == cli_folder_default == InspectOptions(**DEFAULTS) == InspectOptions()
    assert cli_set == cli_folder_set == by_hand
    api = [o for _, _, o in seen[4:]]
    assert api == [InspectOptions(), by_hand, by_hand, by_hand] * 2
    assert not out.exists()


def test_inspect_image_takes_options_or_the_old_keywords_alike():
    """One image through stub models with the options as an object and as keywords: the same
    windows (worked out by hand), batches and result."""

    class Recorder:
        channels, threshold = 1, 0.5

        def __init__(self):
            self.batches = []

        def __call__(self, tiles):
            self.batches.append(len(tiles))
            return tiles[:, 0]

    yy, xx = np.mgrid[0:70, 0:100].astype(np.float32)
    image = ((yy / 69 + xx / 99) / 2)[None]
    flags = lambda tiles: torch.linspace(0, 1, len(tiles))  # noqa: E731
    options = InspectOptions(tile=32, threshold=0.4, window=48, overlap=0.5, batch=5, scale=1.5)
    results = []
    for args, kwargs in (
        ((options,), {}),
        ((), dict(tile=32, threshold=0.4, window=48, overlap=0.5, batch_size=5, scale=1.5)),
        ((InspectOptions(tile=32, window=48),), dict(threshold=0.4, overlap=0.5, batch_size=5, scale=1.5)),
    ):
        seg = Recorder()
        results.append((inspect_image(image, flags, seg, *args, **kwargs), seg.batches))
    (first, batches), *rest = results
    # 70 x 100 at scale 1.5 is 105 x 150; 48-px windows overlapping by 24 px step 24 px:
    # 1 + ceil((105 - 48) / 24) = 4 rows and 1 + ceil((150 - 48) / 24) = 6 columns
    assert first.scaled_size == (105, 150) and (first.plan.window, first.plan.overlap, len(first.plan)) == (48, 24, 24)
    # 32-px tiles on 105 x 150: rows at 0, 32, 64, 73 and columns at 0, 32, 64, 96, 118
    assert first.n_tiles == 4 * 5 and first.threshold == 0.4
    assert sum(batches) == first.windows_segmented and max(batches) <= 5 and batches.count(5) >= len(batches) - 1
    for r, b in rest:
        assert b == batches and r.windows_segmented == first.windows_segmented
        assert np.array_equal(r.flagged, first.flagged) and np.array_equal(r.probability, first.probability)


@pytest.mark.skipif(not (SHIPPED / "segmenter").is_dir(), reason="the shipped crack models are not here")
def test_the_command_line_and_the_api_write_the_same_files(tmp_path):
    """The shipped crack models on a small photo-like image, every option set: the command line and
    inspect_image_file with the same options as keywords write the same report."""
    rng = np.random.default_rng(1)
    rgb = (rng.random((100, 130, 3)) * 60 + 150).astype(np.uint8)
    rgb[48:52, 10:120] = 40  # a dark line: a crack
    image = tmp_path / "plate.png"
    Image.fromarray(rgb).save(image)
    seg, clf = SHIPPED / "segmenter", SHIPPED / "tile_classifier_1bit"  # the 1-bit screen: --runtime packed
    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    assert (
        main(
            [
                "inspect-image",
                str(image),
                "--segmenter",
                str(seg),
                "--classifier",
                str(clf),
                "--out",
                str(cli_out),
                *ARGS,
            ]
        )
        == 0
    )
    inspect_image_file(image, seg, api_out, classifier_path=clf, **KEYWORDS)
    for name in ("mask.png", "overlay.png", "tiles.csv", "cracks.csv"):
        assert (cli_out / name).read_bytes() == (api_out / name).read_bytes(), name
    a, b = (json.loads((d / "summary.json").read_text()) for d in (cli_out, api_out))
    for s in (a, b):
        s.pop("timings_s"), s["cracks"].pop("measure_s")
    assert a == b
    # the options as given, worked out by hand: 100 x 130 at 0.8 is 80 x 104; 10 % of 96 px is 10 px
    assert (a["tile"], a["window"], a["overlap_px"], a["scaled_size"]) == (48, 96, 10, [80, 104])
    assert (a["threshold"], a["classifier_runtime"], a["cracks"]["mm_per_pixel"]) == (0.3, "packed", 0.2)
    assert a["segmenter_tta"] == "flip"


# ---- the help shows the options' defaults and descriptions -------------------------------------------------
def test_the_help_shows_the_defaults_and_descriptions_of_the_options(capsys):
    import typer.main

    params = {p.name: p for p in typer.main.get_command(app).commands["inspect-image"].params}
    assert set(params) == set(DEFAULTS) | {"image", "classifier", "segmenter", "out"}
    assert InspectOptions().model_dump() == DEFAULTS
    for name, default in DEFAULTS.items():
        assert params[name].default == default, name
        assert params[name].opts == [FLAGS[name]], name
    assert main(["inspect-image", "--help"]) == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    shown = {}
    for name, flag in FLAGS.items():
        after = text.split(f" {flag} ", 1)[1]
        entry = re.split(r" --[a-z]", after, maxsplit=1)[0]
        assert " ".join(InspectOptions.model_fields[name].description.split()) in entry, name
        found = re.search(r"\[default: ([^\]]+)\]", entry)
        shown[name] = found.group(1) if found else None
    # typer shows the defaults that are values; None and the False of a flag are not shown
    assert shown == {name: None for name in DEFAULTS} | {
        "runtime": "auto",
        "batch": "64",
        "follow": "0",
        "follow_threshold": "0.0",
        "scale": "1.0",
        "tta": "none",
    }


def test_the_command_line_reads_the_options_without_importing_torch():
    code = "import sys, crackscope.cli; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_image_checks_live_in_data_images_and_are_re_exported():
    import crackscope.data.images as images
    import crackscope.deploy.cascade as cascade

    for name in ("read_image", "check_image", "to_channels"):
        assert getattr(cascade, name) is getattr(images, name)
    x = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]], [[0.5, 0.5]]])  # RGB, 1 x 2
    # Pillow's ITU-R 601 luminance of 8-bit levels: (19595 R + 38470 G + 7471 B + 32768) >> 16
    expected = [(19595 * 0 + 38470 * 255 + 7471 * 128 + 32768) >> 16, (19595 * 255 + 0 + 7471 * 128 + 32768) >> 16]
    assert (images.to_channels(x, 1, check=False) * 255).round().flatten().tolist() == expected
    with pytest.raises(InputError, match="dtype uint8"):
        images.to_channels(np.zeros((1, 2, 2), np.uint8), 1)


def test_inspect_options_returns_given_options_unchanged_and_names_the_caller():
    options = InspectOptions(tile=8)
    assert inspect_options(options, {}, "f") is options
    assert inspect_options(None, {}, "f") == InspectOptions()
    with pytest.raises(TypeError, match=r"^g\(\) got an unexpected keyword argument 'x'$"):
        inspect_options(None, {"x": 1}, "g")
