"""``crackscope package`` (crackscope.deploy.package): a run becomes a model folder holding exactly the
files a shipped model needs, copied unchanged, with a README naming the commands that reproduce it;
bad input is one line, exit 2 and nothing written, and a failure half-way leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from crackscope.cli import main
from crackscope.deploy.package import package_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN_FILES = ["config.yaml", "metrics.json", "model.safetensors", "operating_point.json", "split.json"]


def _run(root: Path, name: str, pipeline: str, model: dict, geometry: dict, data: dict, split: dict) -> Path:
    """A run folder as training leaves it (config.yaml, model.safetensors, split.json, checkpoints/,
    logs/), with untrained weights."""
    from crackscope.engine.config import dump_config, load_train_config
    from crackscope.engine.runs import build_model

    loss = {"name": "cross_entropy" if pipeline == "classify" else "dice"}
    cfg = load_train_config(
        None,
        base={
            "name": name,
            "pipeline": pipeline,
            "out_dir": "runs/cascade",
            "data": data,
            "model": model,
            "loss": loss,
        },
    )
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not shipped")
    (run / "logs").mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**dump_config(cfg), "geometry": geometry}, sort_keys=False))
    torch.manual_seed(0)
    weights = {k: v.contiguous() for k, v in build_model(cfg, geometry).state_dict().items()}
    save_file(weights, str(run / "model.safetensors"))
    (run / "split.json").write_text(json.dumps(split))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("package")
    stems = {"train": ["a"], "val": ["b"], "test": ["c"]}
    clf = _run(
        root,
        "clf",
        "classify",
        {"name": "aoie_net_resnet20", "width": 0.25},
        {"in_channels": 1, "classes": 2},
        {"root": str(root), "format": "deepcrack-tiles", "channels": 1, "tiles": {"tile": 32}},
        {"classes": ["no_crack", "crack"], "stems": stems},
    )
    (clf / "metrics.json").write_text(json.dumps({"accuracy": 0.75, "f1": 0.5, "n_images": 30}))
    point = {  # as choose-operating-point records it
        "threshold": 0.4,
        "default": "true",
        "target_share": 0.9,
        "margin": 0.0,
        "tile": 32,
        "window": 64,
        "overlap": 0.0,
        "segmenter": "runs/cascade/seg",
    }
    (clf / "operating_point.json").write_text(json.dumps(point))
    seg = _run(
        root,
        "seg",
        "surface",
        {"name": "unet", "base_channels": 2, "depth": 2},
        {"in_channels": 3, "classes": 1},
        {"root": str(root), "format": "deepcrack", "in_channels": 3},
        {"stems": stems},
    )
    return {"classifier": clf, "segmenter": seg}


def _reproduce(readme: str) -> list[str]:
    """The indented command lines after 'Reproduce:'."""
    after = readme.split("Reproduce:\n\n", 1)[1]
    return [line[4:] for line in after.split("\n\n", 1)[0].splitlines()]


def test_a_run_becomes_a_model_folder_with_a_readme_that_reproduces_it(runs, tmp_path, cli):
    out = tmp_path / "weights" / "cracks" / "tile_classifier"
    done = cli("package", runs["classifier"], "--out", out, "--packed", timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([*RUN_FILES, "README.md", "model.packed.safetensors"])
    for name in RUN_FILES:
        assert (out / name).read_bytes() == (runs["classifier"] / name).read_bytes(), name
    readme = (out / "README.md").read_text()
    assert _reproduce(readme) == [
        f"crackscope train --config {out}/config.yaml",
        "crackscope choose-operating-point runs/cascade/clf --segmenter runs/cascade/seg --target-share 0.9 "
        "--criterion true --tile 32 --window 64 --overlap 0",
        f"crackscope package runs/cascade/clf --out {out} --packed",
    ]
    assert "accuracy 0.7500" in readme and "f1 0.5000" in readme and "30 test images" in readme
    assert "threshold 0.4000" in readme
    # the folder is a model: the packed twin classifies as the float one, the config trains again
    from crackscope.deploy.cascade import load_classifier
    from crackscope.engine.config import dump_config, load_train_config

    tiles = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    packed, float_model = load_classifier(out, runtime="packed"), load_classifier(out)
    assert torch.allclose(packed(tiles), float_model(tiles), atol=1e-4) and float_model.threshold == 0.4
    saved = yaml.safe_load((out / "config.yaml").read_text())
    saved.pop("geometry")
    assert dump_config(load_train_config(out / "config.yaml")) == saved
    assert not list(out.parent.glob(".*"))  # no temporary folder left beside it


def test_onnx_ships_the_graph_that_the_onnx_runtime_reads(runs, tmp_path):
    from crackscope.deploy.cascade import load_classifier

    out = tmp_path / "model"
    done = package_model(runs["classifier"], out, onnx=True)
    assert "model.onnx" in done["files"] and done["reproduce"][-1].endswith(f"--out {out} --onnx")
    assert "`model.onnx`" in (out / "README.md").read_text()
    onnx = load_classifier(out, runtime="onnx")
    assert onnx.logits_fn.source == str(out / "model.onnx")  # read, not exported again
    tiles = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(onnx(tiles), load_classifier(out, runtime="torch")(tiles), atol=1e-5, rtol=0)


def test_a_given_readme_or_reproduce_commands(runs, tmp_path):
    note = tmp_path / "note.md"
    note.write_text("# My segmenter\n\nReproduce: `crackscope train --config configs/cascade/x.yaml`\n")
    assert main(["package", str(runs["segmenter"]), "--out", str(tmp_path / "a"), "--readme", str(note)]) == 0
    assert (tmp_path / "a" / "README.md").read_text() == note.read_text()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["README.md", "config.yaml", "model.safetensors",
                                                                   "split.json"]  # fmt: skip
    args = ["package", str(runs["segmenter"]), "--out", str(tmp_path / "b"), "--reproduce", "first one"]
    assert main([*args, "--reproduce", "second one"]) == 0
    assert _reproduce((tmp_path / "b" / "README.md").read_text()) == ["first one", "second one"]


def test_force_replaces_the_whole_folder(runs, tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older packaging")
    assert main(["package", str(runs["segmenter"]), "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.yaml", "model.safetensors", "split.json"]
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    "case,named",
    [
        ("no-run", "run {tmp}/nowhere: no such run directory"),
        ("no-weights", "not a finished training run (no model.safetensors)"),
        ("occupied", "exists and is not empty; pass --force"),
        ("packed-surface", "only binary classifiers can be bit-packed"),
        ("onnx-surface", "--onnx: only image classifiers are shipped with their ONNX graph"),
        ("no-readme", "--readme {tmp}/missing.md: no such file"),
        ("inside", "is inside the run"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(runs, tmp_path, capsys, case, named):
    run, out, extra = runs["segmenter"], tmp_path / "out" / "model", []
    if case == "no-run":
        run = tmp_path / "nowhere"
    if case == "no-weights":
        run = tmp_path / "unfinished"
        shutil.copytree(runs["segmenter"], run)
        (run / "model.safetensors").unlink()
    if case == "occupied":
        out.mkdir(parents=True)
        (out / "keep.txt").write_text("mine")
    if case == "packed-surface":
        extra = ["--packed"]
    if case == "onnx-surface":
        extra = ["--onnx"]
    if case == "no-readme":
        extra = ["--readme", str(tmp_path / "missing.md")]
    if case == "inside":
        run = tmp_path / "run"
        shutil.copytree(runs["segmenter"], run)
        out = run / "shipped"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(["package", str(run), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and named.format(tmp=tmp_path) in err[0], err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, nothing left


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path, cli):
    done = cli("package", tmp_path / "nowhere", "--out", tmp_path / "out", timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: run {tmp_path / 'nowhere'}: no such run directory"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_half_way_leaves_no_half_folder(runs, tmp_path, monkeypatch, existing):
    out = tmp_path / "model"
    if existing:
        out.mkdir()
        (out / "old.txt").write_text("the folder as it was")
    copies = []
    real = shutil.copyfile

    def failing(src, dst, *a, **kw):
        copies.append(dst)
        if len(copies) == 3:
            raise OSError("disk full")
        return real(src, dst, *a, **kw)

    monkeypatch.setattr("crackscope.deploy.package.shutil.copyfile", failing)
    with pytest.raises(OSError, match="disk full"):
        package_model(runs["classifier"], out, replace=True)
    assert len(copies) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == (["model"] if existing else [])
    if existing:
        assert [p.name for p in out.iterdir()] == ["old.txt"]
