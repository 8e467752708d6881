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


def test_validation_photos_of_two_runs(tmp_path):
    from crackscope.data.splits import stems_only_in

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "split.json").write_text(json.dumps({"stems": {"train": ["p1"], "val": ["p2", "p3", "p7"], "test": ["p4"]}}))
    # b trained on p3 and holds p7 out for its test: only p2 is validation for both and training for neither
    (b / "split.json").write_text(json.dumps({"stems": {"train": ["p3"], "val": ["p2", "p8"], "test": ["p7"]}}))
    assert stems_only_in("val", a, b) == ["p2"]
    assert stems_only_in("val", b, a) == ["p2"]
    assert stems_only_in("val", a) == ["p2", "p3", "p7"]
    assert stems_only_in("test", a, b) == stems_held_out_by(a, b) == []
