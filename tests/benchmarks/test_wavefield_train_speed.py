"""benchmarks/wavefield_train_speed.py on a tiny setting (T = 64, batch 2, one eager step): the rows
carry the expected keys and a positive speed, the first-step comparison of eager with itself is
exact, and the markdown writer gives one table row per (T, variant). Nothing here is timed."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import wavefield_train_speed as bench  # noqa: E402

ROW_KEYS = {
    "n_time",
    "variant",
    "compile",
    "channels_last",
    "bf16",
    "batch",
    "steps",
    "repeats",
    "warmup",
    "warmup_seconds",
    "round_seconds",
    "seconds",
    "step_seconds",
    "samples_per_s",
    "speedup_vs_eager",
    "compile_seconds",
    "warmup_overhead_seconds",
    "other_processes_cpu_fraction",
    "first_step",
}
FIRST_STEP_KEYS = {"loss", "grad_norm", "loss_rel_diff", "grad_norm_rel_diff", "grad_rel_err"}


@pytest.fixture(scope="module")
def rows():
    return bench.measure(64, ["eager"], batch=2, steps=1, warmup=1, repeats=1, log=lambda *_: None)


def test_rows_have_the_expected_keys_and_a_positive_speed(rows):
    (row,) = rows
    assert ROW_KEYS <= set(row) and FIRST_STEP_KEYS <= set(row["first_step"])
    assert (row["n_time"], row["variant"], row["batch"], row["steps"]) == (64, "eager", 2, 1)
    assert row["samples_per_s"] > 0 and row["speedup_vs_eager"] == pytest.approx(1.0)
    assert row["compile_seconds"] is None and not row["compile"] and not row["bf16"]
    assert row["first_step"]["loss"] > 0 and row["first_step"]["grad_norm"] > 0
    assert row["first_step"]["loss_rel_diff"] == 0.0  # eager fp32 against eager fp32, same weights and batch


def test_markdown_has_one_row_per_n_time_and_variant(rows):
    other = [{**rows[0], "n_time": 128}, {**rows[0], "variant": "bf16_autocast", "bf16": True, "speedup_vs_eager": 0.5}]
    report = {
        "date": "2000-01-01T00:00:00+00:00",
        "git_commit": "abc",
        "hardware": {"cpu_model": "cpu", "available_cpus": 2},
        "software": {"torch": "x", "torch_threads": 2},
        "settings": {"batch": 2, "steps": 1, "repeats": 1, "warmup": 1},
        "load_average_before": [0.0, 0.0, 0.0],
        "load_average_after": [0.0, 0.0, 0.0],
        "attention_uses_sdpa": True,
        "rows": rows + other,
    }
    table = [ln for ln in bench.markdown(report).splitlines() if ln.startswith("| ") and not ln.startswith("| T ")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table]
    assert [(c[0], c[1]) for c in cells] == [("64", "eager"), ("128", "eager"), ("64", "bf16_autocast")]
    assert cells[2][3] == "0.50x" and cells[0][5] == "ref"
    json.dumps(report)  # the report is plain JSON


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variants"):
        bench.measure(64, ["eager_fast"], batch=2, steps=1)
