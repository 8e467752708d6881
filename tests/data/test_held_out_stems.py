"""The images held out by several runs: in every run's test part and in no run's other parts."""

from __future__ import annotations

import json

from crackscope.data.splits import stems_held_out_by


def test_held_out_by_two_runs(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "split.json").write_text(json.dumps({"stems": {"train": ["p1"], "val": ["p2"], "test": ["p3", "p4", "p5"]}}))
    # b trained on p4 and chose its threshold on p5; p6 is in b's test part only
    (b / "split.json").write_text(json.dumps({"stems": {"train": ["p4", "p1"], "val": ["p5"], "test": ["p6", "p3"]}}))
    assert stems_held_out_by(a, b) == ["p3"]
    assert stems_held_out_by(b, a) == ["p3"]
    assert stems_held_out_by(a) == ["p3", "p4", "p5"]
