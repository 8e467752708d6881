"""benchmarks/neu_paper_protocol_report.py's tables from hand-made rows: the test errors and the
sample interval of each run, and the mean / spread over training seeds (worked by hand)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import neu_paper_protocol_report as report  # noqa: E402


def _row(run, correct, reached=90, model="aoie_net_resnet20"):
    return {
        "run": run,
        "model": model,
        "epochs": 90,
        "reached": reached,
        "test_last": correct / 288,
        "f1_last": 0.99,
        "val_last": 0.99,
        "n_test": 288,
    }


def test_seed_runs_share_their_base_name():
    assert report.base_name("aoie_net_s12") == "aoie_net" and report.base_name("aoie_net") == "aoie_net"
    assert report.base_name("fracbnn_aba_io_s3") == "fracbnn_aba_io" and report.base_name("resnet20") == "resnet20"


def test_over_seeds_by_hand():
    rows = [
        report.with_sample_interval(r)
        for r in (
            _row("aoie_net", 286),
            _row("aoie_net_s1", 285),
            _row("aoie_net_s2", 287),
            _row("aoie_net_s3", 200, reached=40),  # unfinished: left out
            _row("ienet", 280, model="ienet_resnet20"),
        )
    ]  # one seed only: no spread to give
    (g,) = report.over_seeds(rows)
    # 285, 286, 287 of 288: mean 286/288, sample standard deviation exactly 1/288
    assert g["name"] == "aoie_net" and g["seeds"] == 3 and g["errors"] == [2, 3, 1]
    assert g["mean"] == pytest.approx(286 / 288) and g["std"] == pytest.approx(1 / 288)
    assert (g["min"], g["max"]) == (pytest.approx(285 / 288), pytest.approx(287 / 288))
    lines = report.markdown(rows)
    assert "| aoie_net | 3 | 99.31 % | 0.35 points | 98.96 % – 99.65 % | 2, 3, 1 | 99.4 % (T4) |" in lines
    seed_row = next(line for line in lines if line.startswith("| aoie_net_s1 "))
    assert "| 3 of 288 |" in seed_row and seed_row.endswith("| 99.4 % (T4) |")  # the paper's row by base name


def test_from_json_rewrites_the_tables_with_errors_and_intervals(tmp_path, monkeypatch):
    from crackscope.metrics import accuracy_interval

    rows = [_row("aoie_net", 286), {"run": "ienet", "model": "ienet_resnet20", "epochs": 90, "reached": 3}]
    saved = tmp_path / "old.json"
    saved.write_text(json.dumps(rows))
    out = tmp_path / "t.md"
    monkeypatch.setattr(sys, "argv", ["report", "--from-json", str(saved), "--out", str(out)])
    report.main()
    written = json.loads(out.with_suffix(".json").read_text())
    assert written[0]["errors_last"] == 2 and written[0]["interval_last"] == pytest.approx(
        list(accuracy_interval(286, 288))
    )
    assert written[1] == rows[1]
    assert "| 2 of 288 | 97.5–99.9 % |" in out.read_text()  # Clopper-Pearson for 286 of 288
