"""Table of the runs made by benchmarks/neu_paper_protocol.sh, scored again on this machine's CPU.

For every finished run (it has metrics.json) the test split is evaluated twice, both times on the
original NEU-CLS images given with --data:

* the weights the run wrote (model.safetensors: the best-validation epoch unless the config says
  trainer.weights=last), and
* the weights after the last epoch (checkpoints/last.ckpt),

because NEU-CLS's validation part (114 images, 10 % of the training part) is too small to rank
epochs: one image is 0.9 points. A run that reached its last epoch but was stopped before it wrote
its weights gets the last-epoch column only; an unfinished run gets the last epoch it reached.

How far the test split pins an accuracy down: the last-epoch column also gives the test errors
and the exact 95 % (Clopper-Pearson) interval of the accuracy (``crackscope.metrics.accuracy_interval``;
the spread of the test sample, not of training). Runs of one model with several training seeds
(``SEEDS="0 1 2" neu_paper_protocol.sh``: NAME, NAME_s1, NAME_s2 on one split) get a second table:
the mean, sample standard deviation and range of the last-epoch test accuracy over the finished seeds.

    .venv/bin/python benchmarks/neu_paper_protocol_report.py RUNS_DIR --data ../shared/datasets/NEU-CLS \
        --out benchmarks/results/neu_paper_protocol.md
    .venv/bin/python benchmarks/neu_paper_protocol_report.py --from-json benchmarks/results/neu_paper_protocol.json \
        --out benchmarks/results/neu_paper_protocol.md      # re-write the tables from the recorded rows
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import statistics
import tempfile
from pathlib import Path

import yaml

# The paper's Table 4 (NEU-CLS, ResNet-20) and Table 1 (CIFAR-10) for the rows it reports.
PAPER = {
    "aoie_net": "99.4 % (T4)",
    "ienet": "97.9 % (T4)",
    "adabin": "98.1 % (T4)",
    "fracbnn": "88.2 % (T1, CIFAR-10)",
    "fracbnn_aba_io": "88.5 % (T1, CIFAR-10)",
    "fracbnn_dbn_ieb": "88.6 % (T1, CIFAR-10)",
    "fracbnn_pan": "88.7 % (T1, CIFAR-10)",
}
# Runs named otherwise (e.g. a data.val_fraction=0 run) find their Table 4 row by model.
PAPER_BY_MODEL = {
    "aoie_net_resnet20": PAPER["aoie_net"],
    "ienet_resnet20": PAPER["ienet"],
    "adabin_resnet20": PAPER["adabin"],
}


def base_name(run: str) -> str:
    """The run's name without the training-seed suffix: ``aoie_net_s3`` -> ``aoie_net``."""
    return re.sub(r"_s\d+$", "", run)


def _paper(row: dict) -> str:
    return PAPER.get(base_name(row["run"])) or PAPER_BY_MODEL.get(row["model"], "–")


def over_seeds(rows: list[dict]) -> list[dict]:
    """Per base name with two or more finished runs (all epochs, a last-epoch score): the number of
    seeds, the mean, sample standard deviation, smallest and largest last-epoch test accuracy, and
    the runs' error counts, in run order."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if "test_last" in r and r["reached"] == r["epochs"]:
            groups.setdefault(base_name(r["run"]), []).append(r)
    out = []
    for name, rs in groups.items():
        if len(rs) < 2:
            continue
        acc = [r["test_last"] for r in rs]
        out.append(
            {
                "name": name,
                "model": rs[0]["model"],
                "seeds": len(rs),
                "mean": statistics.fmean(acc),
                "std": statistics.stdev(acc),
                "min": min(acc),
                "max": max(acc),
                "errors": [r["errors_last"] for r in rs],
                "runs": [r["run"] for r in rs],
            }
        )
    return out


def _log(run: Path) -> tuple[int, dict[int, float]]:
    """(epochs reached, validation accuracy per epoch (0-based)) over the first log and every
    resumed segment; the curve is empty for a run without validation (data.val_fraction 0)."""
    reached, curve = 0, {}
    for f in [run / "logs" / "metrics.csv", *sorted((run / "logs").glob("resume*/metrics.csv"))]:
        if f.exists():
            for row in csv.DictReader(f.open()):
                reached = max(reached, int(row["epoch"]) + 1)
                if row.get("val/accuracy"):
                    curve[int(row["epoch"])] = float(row["val/accuracy"])
    return reached, curve


def _val(v: float | None) -> str:
    return f"{100 * v:.1f} %" if v is not None else "no validation"


def _with_data_root(run: Path, data: Path, dst: Path, weights: dict | None = None) -> Path:
    """A copy of the run (config, split, weights) whose data.root is DATA, so that evaluation
    recognises the training data and scores its test split only."""
    dst.mkdir(parents=True)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["root"] = str(data)
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copy(run / "split.json", dst / "split.json")
    if weights is None:
        shutil.copy(run / "model.safetensors", dst / "model.safetensors")
    else:
        from safetensors.torch import save_file

        save_file(weights, str(dst / "model.safetensors"))
    return dst


def main() -> None:
    from crackscope.engine.classify import evaluate_classification_run
    from crackscope.engine.train import checkpoint_weights

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="?", help="the OUT_DIR of neu_paper_protocol.sh")
    ap.add_argument("--data", type=Path, help="the NEU-CLS folder the runs trained on")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--from-json",
        type=Path,
        help="re-write the tables from the rows of an earlier report's "
        ".json (no runs or data needed), e.g. after the table gained columns",
    )
    a = ap.parse_args()
    if a.from_json:
        write_report([with_sample_interval(r) for r in json.loads(a.from_json.read_text())], a.out)
        return
    if a.runs is None or a.data is None:
        ap.error("give RUNS and --data (or --from-json)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in sorted(p for p in a.runs.iterdir() if (p / "config.yaml").exists()):
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            reached, curve = _log(run)
            row = {
                "run": run.name,
                "model": cfg["model"]["name"],
                "epochs": cfg["trainer"]["max_epochs"],
                "reached": reached,
            }
            if (run / "metrics.json").exists():  # finished: score the weights it wrote again
                saved = json.loads((run / "metrics.json").read_text())
                best = evaluate_classification_run(
                    _with_data_root(run, a.data, Path(tmp) / run.name / "best"),
                    a.data,
                    Path(tmp) / run.name / "best_eval",
                )
                kept = saved.get("weights_epoch", saved["best_epoch"])
                row.update(
                    best_epoch=kept,
                    val_best=curve.get(kept),
                    test_best=best["accuracy"],
                    f1_best=best["f1"],
                    training_machine_test_best=saved["accuracy"],
                    hardware=saved.get("hardware"),
                )
            if (run / "checkpoints" / "last.ckpt").exists():
                last = evaluate_classification_run(
                    _with_data_root(
                        run,
                        a.data,
                        Path(tmp) / run.name / "last",
                        checkpoint_weights(run / "checkpoints" / "last.ckpt"),
                    ),
                    a.data,
                    Path(tmp) / run.name / "last_eval",
                )
                row.update(
                    test_last=last["accuracy"],
                    f1_last=last["f1"],
                    val_last=curve.get(reached - 1),
                    n_test=last["n_images"],
                    errors_last=last["errors"],
                    interval_last=last["accuracy_interval_95"],
                )
            rows.append(row)
            print(row, flush=True)
    write_report(rows, a.out)


def with_sample_interval(row: dict) -> dict:
    """The row with its last-epoch test errors and 95 % interval, computed from its accuracy and
    test size when an earlier report did not record them."""
    if "test_last" not in row or "interval_last" in row:
        return row
    from crackscope.metrics import accuracy_interval

    correct = round(row["test_last"] * row["n_test"])
    return {
        **row,
        "errors_last": row["n_test"] - correct,
        "interval_last": list(accuracy_interval(correct, row["n_test"])),
    }


def write_report(rows: list[dict], out: Path) -> None:
    """OUT (the tables, markdown) and OUT with .json (the rows)."""
    from crackscope.io import atomic_write_text

    lines = markdown(rows)
    atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


def markdown(rows: list[dict]) -> list[str]:
    """The runs table, and the over-seeds table when a model has several finished seeds."""
    lines = [
        "| run | model | epochs | epoch of the written weights (val acc) | their test acc (CPU / training "
        "machine) | test acc, last epoch (val acc) | test errors, last epoch | 95 % interval (test sample) "
        "| macro F1 written / last | paper |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    for r in rows:
        if "test_last" not in r:
            lines.append(
                f"| {r['run']} | {r['model']} | {r['reached']} of {r['epochs']} (unfinished) | – | – | – | – "
                f"| – | – | {_paper(r)} |"
            )
            continue
        epochs = r["epochs"] if r["reached"] == r["epochs"] else f"{r['reached']} of {r['epochs']} (unfinished)"
        best = (
            f"{r['best_epoch'] + 1} ({_val(r['val_best'])}) | {pct(r['test_best'])} / "
            f"{pct(r['training_machine_test_best'])}"
            if "test_best" in r
            else "– | – (not written)"
        )
        f1_best = f"{r['f1_best']:.3f}" if "f1_best" in r else "–"
        lo, hi = r["interval_last"]
        lines.append(
            f"| {r['run']} | {r['model']} | {epochs} | {best} "
            f"| {pct(r['test_last'])} ({_val(r['val_last'])}) | {r['errors_last']} of {r['n_test']} "
            f"| {100 * lo:.1f}–{100 * hi:.1f} % | {f1_best} / {r['f1_last']:.3f} | {_paper(r)} |"
        )
    groups = over_seeds(rows)
    if groups:
        lines += [
            "",
            "Over training seeds (same split; last-epoch test accuracy of the finished runs):",
            "",
            "| model | seeds | mean | standard deviation | smallest – largest | test errors per seed | paper |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for g in groups:
            lines.append(
                f"| {g['name']} | {g['seeds']} | {pct(g['mean'])} | {100 * g['std']:.2f} points "
                f"| {pct(g['min'])} – {pct(g['max'])} | {', '.join(map(str, g['errors']))} "
                f"| {_paper({'run': g['name'], 'model': g['model']})} |"
            )
    return lines


if __name__ == "__main__":
    main()
