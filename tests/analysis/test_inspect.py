"""inspect_store: the summary against facts computed here from the raw store, the figure, the re-simulation."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import zarr

from crackscope.analysis import format_summary, inspect_store, resimulate_sample
from crackscope.analysis import inspect as inspect_mod
from crackscope.errors import InputError
from crackscope.physics.config import PlateConfig

N = 6
EDGES = [0.4, 0.8, 1.6, 3.2, 6.4, 12.8]


@pytest.fixture(scope="module")
def store(tiny_store):
    return tiny_store


@pytest.fixture(scope="module")
def raw(store, read_store):
    return read_store(store, "signals", "masks", "crack_length_um", "crack_points_m", "n_cracks", "done")


@pytest.fixture(scope="module")
def inspected(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    return out, inspect_store(store, out)


def _polyline_lengths_um(points: np.ndarray) -> list[float]:
    """Crack lengths [µm] straight from the NaN-padded polylines, segment by segment."""
    lengths = []
    for poly in points:
        pts = [p for p in poly if np.isfinite(p).all()]
        if len(pts) >= 2:
            lengths.append(sum(float(np.hypot(*(b - a))) for a, b in zip(pts[:-1], pts[1:])) * 1e6)
    return lengths


def test_summary_agrees_with_the_store(raw, inspected):
    _, summary = inspected
    per_sample = [[float(v) for v in row if np.isfinite(v)] for row in raw["crack_length_um"]]
    # the stored lengths are the polylines' lengths (an independent route to the same numbers)
    for row, points in zip(per_sample, raw["crack_points_m"]):
        np.testing.assert_allclose(row, _polyline_lengths_um(points), rtol=1e-6)
    every = [v for row in per_sample for v in row]

    assert summary["n_samples"] == N and summary["n_done"] == N
    assert summary["n_cracks_total"] == len(every) == int(raw["n_cracks"].sum())
    counts = [len(row) for row in per_sample]
    cps = summary["cracks_per_sample"]
    assert (cps["min"], cps["max"]) == (min(counts), max(counts))
    assert cps["mean"] == pytest.approx(sum(counts) / N)
    assert sum(cps["counts"].values()) == N

    hist = summary["crack_length_um"]
    assert hist["bin_edges"] == EDGES
    expected = [
        sum(1 for v in every if a <= v < b or (b == EDGES[-1] and v == b)) for a, b in zip(EDGES[:-1], EDGES[1:])
    ]
    assert hist["counts"] == expected
    assert sum(hist["counts"]) + hist["below_range"] + hist["above_range"] == len(every)
    assert hist["min"] == pytest.approx(min(every)) and hist["max"] == pytest.approx(max(every))

    largest = [max(row, default=0.0) for row in per_sample]
    assert summary["samples_with_largest_crack_over_um"] == {
        f"{t}": sum(1 for v in largest if v > t) for t in (0, 1, 2, 3, 4)
    }
    assert summary["mean_crack_pixel_fraction"] == pytest.approx(
        float(raw["masks"].astype(np.float64).mean()), rel=1e-12
    )


def test_default_sample_and_snapshots(raw, inspected):
    _, summary = inspected
    largest = np.nanmax(np.where(np.isnan(raw["crack_length_um"]), -np.inf, raw["crack_length_um"]), axis=1)
    s = summary["sample"]
    assert s["index"] == int(np.argmax(largest))
    assert s["max_crack_length_um"] == pytest.approx(float(largest.max()))
    assert s["n_cracks"] == int(raw["n_cracks"][s["index"]])
    cfg = PlateConfig.preset("tiny")  # 199 steps < 600: six snapshots n_steps // 6 = 33 steps apart
    assert s["snapshot_steps"] == [33 * k for k in range(1, 7)]
    assert s["snapshot_times_ns"] == pytest.approx([33 * k * cfg.dt * 1e9 for k in range(1, 7)])
    assert s["resimulation_max_rel_error"] < 1e-5


def test_files_are_written_and_valid(inspected):
    out, summary = inspected
    assert sorted(p.name for p in out.iterdir()) == ["inspect.png", "summary.json"]  # no temporary leftovers
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    png = (out / "inspect.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 1000 and height >= 800
    assert 50_000 < len(png) < 5_000_000
    import matplotlib.image as mpimg

    img = mpimg.imread(out / "inspect.png")
    assert img.shape[:2] == (height, width) and float(img[..., :3].std()) > 0.05  # not a blank canvas


def test_format_summary(inspected):
    _, summary = inspected
    text = format_summary(summary)
    assert f"{N} of {N} samples done" in text
    assert "~5 %" in text
    assert (
        " | ".join(f"{a:g}-{b:g}: {c}" for a, b, c in zip(EDGES[:-1], EDGES[1:], summary["crack_length_um"]["counts"]))
        in text
    )
    assert f"{100 * summary['mean_crack_pixel_fraction']:.2f} %" in text
    assert "WARNING" not in text
    drifted = json.loads(json.dumps(summary))
    drifted["sample"]["resimulation_max_rel_error"] = 0.5
    assert "WARNING" in format_summary(drifted)


def test_resimulated_sample_reproduces_the_stored_signals(store, raw):
    g = zarr.open_group(str(store), mode="r")
    for i in (0, 3):
        res = resimulate_sample(g, i)
        again = res.signals[0].float().numpy()
        peak = np.abs(raw["signals"][i]).max()
        np.testing.assert_allclose(again, raw["signals"][i], rtol=1e-5, atol=1e-6 * peak)
        np.testing.assert_array_equal(res.masks[0].numpy(), raw["masks"][i])
        # and the cracks matter: the reference (no crack) differs from the sample by far more than the tolerance
        assert np.abs(np.asarray(g["reference"][...]) - raw["signals"][i]).max() > 1e-3 * peak


def test_partial_store_and_bad_input(store, raw, tmp_path):
    copy = tmp_path / "partial.zarr"
    shutil.copytree(store, copy)
    largest = np.nanmax(np.where(np.isnan(raw["crack_length_um"]), -np.inf, raw["crack_length_um"]), axis=1)
    best = int(np.argmax(largest))
    g = zarr.open_group(str(copy), mode="r+")
    g["done"][best] = 0

    out = tmp_path / "out"
    summary = inspect_store(copy, out, sample=None)
    assert summary["n_done"] == N - 1
    rest = [i for i in range(N) if i != best]
    assert summary["sample"]["index"] == rest[int(np.argmax(largest[rest]))]
    assert summary["n_cracks_total"] == int(raw["n_cracks"][rest].sum())
    assert summary["mean_crack_pixel_fraction"] == pytest.approx(float(raw["masks"][rest].mean()))

    with pytest.raises(InputError, match=f"sample={best}"):
        inspect_store(copy, out, sample=best)
    with pytest.raises(InputError, match="sample=99"):
        inspect_store(copy, out, sample=99)
    with pytest.raises(InputError, match="sample=-1"):
        inspect_store(copy, out, sample=-1)
    with pytest.raises(InputError, match="not a crackscope"):
        inspect_store(tmp_path, out)
    with pytest.raises(InputError, match="nonsense"):
        inspect_store(copy, out, device="nonsense")


def test_interrupted_inspect_leaves_previous_files_whole(store, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = inspect_store(store, out, sample=0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_mod.os, "fsync", boom)  # dies while the new PNG is half written
    with pytest.raises(KeyboardInterrupt):
        inspect_store(store, out, sample=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old files intact, no temporary left
    assert json.loads(before["summary.json"])["sample"]["index"] == first["sample"]["index"] == 0
