"""Packaging a trained run as a shipped model folder (``src/crackscope/weights/<data>/<name>/``, shipped
inside the package and named ``<data>/<name>``: :mod:`crackscope.shipped`).

A model folder holds what ``crackscope evaluate``, ``predict``, ``export`` and ``inspect-image``
need and nothing else: ``config.yaml``, ``model.safetensors``, and as the run has them
``split.json``, ``metrics.json``, ``operating_point.json`` and ``simulate.yaml``
(:data:`crackscope.engine.runs.MODEL_FOLDER_FILES`); with ``packed``, the bit-packed twin of a
binary classifier, ``model.packed.safetensors``; with ``onnx``, an image classifier's ONNX graph
``model.onnx`` (:mod:`crackscope.deploy.onnx_runtime` reads it); and a ``README.md`` that names the command(s)
that reproduce it. Checkpoints, logs and figures stay behind.

The folder is built beside its destination under a hidden name and renamed into place when it
is complete, so a reader (or a killed job) never sees half of it.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from crackscope.engine import pipelines
from crackscope.errors import InputError

__all__ = [
    "ONNX_FILE",
    "PACKED_FILE",
    "README_FILE",
    "choose_command",
    "package_model",
    "readme_for",
    "reproduce_commands",
]

PACKED_FILE = "model.packed.safetensors"
ONNX_FILE = "model.onnx"
README_FILE = "README.md"
SUMMARY_KEYS = ("dsc", "f1", "accuracy", "precision", "recall", "miou", "iou_defect", "iou")


def _q(path) -> str:
    return shlex.quote(str(path))


def choose_command(classifier: str | Path, point: dict) -> str | None:
    """The ``crackscope choose-operating-point`` command that chooses ``point`` (an
    operating_point.json's contents) again for the classifier run ``classifier``; None for a point
    that command did not choose (no ``segmenter`` or criterion recorded)."""
    if not (point.get("segmenter") and point.get("default")):
        return None
    share = point.get("target_share", point.get("required_share"))
    words = [
        f"crackscope choose-operating-point {_q(classifier)} --segmenter {_q(point['segmenter'])}",
        *([f"--data {_q(point['data'])}"] if point.get("data") else []),
        *([f"--target-share {share:g}"] if share is not None else []),
        *([f"--margin {point['margin']:g}"] if point.get("margin") else []),
        f"--criterion {point['default']}",
        *([f"--tile {point['tile']}"] if point.get("tile") is not None else []),
        *([f"--window {point['window']}"] if point.get("window") is not None else []),
        *([f"--overlap {point['overlap']:g}"] if point.get("overlap") is not None else []),
    ]
    return " ".join(words)


def reproduce_commands(
    run: str | Path, dest: str | Path, packed: bool = False, cfg=None, onnx: bool = False
) -> list[str]:
    """The commands that make the model folder ``dest`` again from scratch: training with the run's
    own (resolved) config as packaged; when its operating_point.json was chosen for a cascade by
    ``crackscope choose-operating-point`` (it names a segmenter), that command with the same
    settings; and this packaging. ``cfg``: the run's config, when loaded already."""
    from crackscope.engine.runs import OPERATING_POINT_FILE, load_run

    run, dest = Path(run), Path(dest)
    cfg = cfg if cfg is not None else load_run(run)[0]
    commands = [f"crackscope train --config {_q(dest / 'config.yaml')}"]
    trained = cfg.run_dir
    op_file = run / OPERATING_POINT_FILE
    if op_file.is_file():
        try:
            op = json.loads(op_file.read_text())
        except ValueError:
            op = None
        choose = choose_command(trained, op) if isinstance(op, dict) else None
        if choose is not None:
            commands.append(choose)
    flags = (" --packed" if packed else "") + (" --onnx" if onnx else "")
    commands.append(f"crackscope package {_q(trained)} --out {_q(dest)}{flags}")
    return commands


def readme_for(
    run: str | Path, dest: str | Path, reproduce: Sequence[str], packed: bool = False, cfg=None, onnx: bool = False
) -> str:
    """A model folder's README: what the model is, its test metrics (metrics.json), its operating
    point, the ``reproduce`` commands and how to use it. ``cfg``: the run's config, when loaded already."""
    from crackscope.engine.runs import OPERATING_POINT_FILE, load_run

    run, dest = Path(run), Path(dest)
    cfg = cfg if cfg is not None else load_run(run)[0]
    lines = [f"# {cfg.model.name} ({cfg.pipeline}), run `{cfg.name}`", ""]
    data = cfg.data.describe() if hasattr(cfg.data, "describe") else getattr(cfg.data, "store", None)
    if data:
        lines += [f"Trained on `{data}`.", ""]
    metrics_file = run / "metrics.json"
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except ValueError:
            metrics = {}
        shown = [
            f"{k} {metrics[k]:.4f}"
            for k in SUMMARY_KEYS
            if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics.get(k), bool)
        ]
        n = metrics.get("n_images", metrics.get("n_samples"))
        if shown:
            on = f" ({n} test {'images' if 'n_images' in metrics else 'samples'})" if n is not None else ""
            lines += [f"Test metrics{on}, from metrics.json: {', '.join(shown)}.", ""]
    op_file = run / OPERATING_POINT_FILE
    if op_file.is_file():
        try:
            threshold = float(json.loads(op_file.read_text())["threshold"])
            lines += [
                f"Operating point (operating_point.json, chosen on validation data): threshold {threshold:.4f}.",
                "",
            ]
        except (ValueError, KeyError, TypeError):
            pass
    if packed:
        lines += [
            f"`{PACKED_FILE}` is the same network bit-packed (1-bit weights, XNOR/popcount; "
            "`crackscope inspect-image ... --runtime packed` uses it), as `crackscope export ... --format packed` "
            "writes it.",
            "",
        ]
    if onnx:
        lines += [
            f"`{ONNX_FILE}` is the same network as an ONNX graph (`crackscope inspect-image` runs a full-precision "
            "classifier in ONNX Runtime from it), as `crackscope export ... --format onnx` writes it.",
            "",
        ]
    lines += ["Reproduce:", "", *(f"    {c}" for c in reproduce), ""]
    lines += [
        f"Use: `crackscope evaluate {dest} --data DATA --out eval/` or "
        f"`crackscope predict {dest} --data INPUT --out pred/`.",
    ]
    return "\n".join(lines) + "\n"


def _check_run(run: Path) -> None:
    if not run.is_dir():
        raise InputError(f"run {run}: no such run directory")
    missing = [f for f in ("config.yaml", "model.safetensors") if not (run / f).is_file()]
    if missing:
        raise InputError(f"run {run}: not a finished training run (no {', '.join(missing)})")


def package_model(
    run: str | Path,
    dest: str | Path,
    *,
    readme: str | None = None,
    reproduce: Sequence[str] | None = None,
    packed: bool = False,
    onnx: bool = False,
    replace: bool = False,
) -> dict:
    """Copy the run ``run`` into the model folder ``dest`` (module docstring) and return
    ``{"path": dest, "files": [names], "reproduce": [commands]}``.

    ``readme``: the README's text as given (else :func:`readme_for` writes one naming ``reproduce``,
    default :func:`reproduce_commands`). ``packed``: also write ``model.packed.safetensors`` (binary
    classifiers; :func:`crackscope.deploy.export.export_packed`); ``onnx``: also write ``model.onnx``
    (image classifiers; :func:`crackscope.deploy.export.export_onnx`). An existing non-empty ``dest`` is
    replaced as a whole only with ``replace``. Bad input raises :class:`InputError` naming it, and
    nothing is written."""
    from crackscope.engine.runs import MODEL_FOLDER_FILES, load_run
    from crackscope.io import atomic_write_text

    run, dest = Path(run), Path(dest)
    _check_run(run)
    cfg = load_run(run)[0]  # refuse to package something that does not load
    if dest.resolve() == run.resolve() or dest.resolve().is_relative_to(run.resolve()):
        raise InputError(f"--out {dest} is inside the run {run}; package it elsewhere")
    if dest.exists() and not dest.is_dir():
        raise InputError(f"--out {dest} exists and is not a folder")
    occupied = dest.is_dir() and any(dest.iterdir())
    if occupied and not replace:
        raise InputError(f"--out {dest} exists and is not empty; pass --force to replace it")
    if readme is not None and reproduce is not None:
        raise InputError("give a README (--readme) or reproduce commands (--reproduce), not both")
    commands = []
    if readme is None:
        commands = list(reproduce) if reproduce is not None else reproduce_commands(run, dest, packed, cfg, onnx)
    if readme is None and not commands:
        raise InputError("--reproduce: a model folder's README needs at least one reproduce command")
    entry = pipelines.get(cfg.pipeline)
    if packed and entry.task != "classification":
        raise InputError(f"--packed: only binary classifiers can be bit-packed ({run} is a {cfg.pipeline} run)")
    if onnx and (entry.task != "classification" or entry.inputs != "images"):
        raise InputError(
            f"--onnx: only image classifiers are shipped with their ONNX graph ({run} is a {cfg.pipeline} run)"
        )

    made = [p for p in reversed(dest.parents) if not p.exists()]  # folders made here, removed on failure
    dest.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}.{secrets.token_hex(4)}"
    tmp = dest.parent / f".{dest.name}.package-{tag}.tmp"
    old = dest.parent / f".{dest.name}.replaced-{tag}.tmp"
    tmp.mkdir()
    try:
        files = []
        for name in MODEL_FOLDER_FILES:
            if (run / name).is_file():
                shutil.copyfile(run / name, tmp / name)
                files.append(name)
        if packed:
            from crackscope.deploy.export import export_packed

            export_packed(tmp, tmp / PACKED_FILE)
            files.append(PACKED_FILE)
        if onnx:
            from crackscope.deploy.export import export_onnx

            export_onnx(tmp, tmp / ONNX_FILE)
            files.append(ONNX_FILE)
        text = readme if readme is not None else readme_for(run, dest, commands, packed, cfg, onnx)
        atomic_write_text(tmp / README_FILE, text)
        files.append(README_FILE)
        if occupied:
            dest.rename(old)
        elif dest.is_dir():
            dest.rmdir()
        try:
            tmp.rename(dest)
        except BaseException:
            if occupied:
                old.rename(dest)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(old, ignore_errors=True)
    return {"path": dest, "files": sorted(files), "reproduce": commands}
