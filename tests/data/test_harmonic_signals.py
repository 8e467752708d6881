"""Measured harmonic signals: manifest grouping, the three file formats, resampling, labels, errors.

Resampling expectations are worked out by hand from linear interpolation on t = i / (n - 1): a ramp
stays a ramp, and [0, 2, 10] on 5 points is [0, 1, 2, 6, 10] (the originals plus the midpoints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crackscope.data.harmonic_signals import HarmonicSignalDataset, read_signal, resample_linear
from crackscope.errors import InputError

HEADER = "sample,file,label,sensor,channel"


def _write_manifest(root: Path, rows: list[str], header: str = HEADER, name: str = "manifest.csv") -> Path:
    path = root / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _npy(root: Path, name: str, values) -> str:
    np.save(root / name, np.asarray(values))
    return name


def _csv(root: Path, name: str, values, header: str | None = "amplitude") -> str:
    lines = ([header] if header else []) + [repr(float(v)) for v in values]
    (root / name).write_text("\n".join(lines) + "\n")
    return name


def _txt(root: Path, name: str, values, header: str | None = None) -> str:
    lines = ([header] if header else []) + [f"{float(v):.17g}" for v in values]
    (root / name).write_text("\n".join(lines) + "\n")
    return name


@pytest.fixture
def folder(tmp_path):
    """Two samples x two sensors x (h2, h3), all three formats, lengths 5, 9 and 4760."""
    r = tmp_path
    rows = [
        f"s1,{_npy(r, 's1_a_h2.npy', np.arange(5.0))},q2,a,h2",
        f"s1,{_csv(r, 's1_a_h3.csv', [0, 2, 10])},q2,a,h3",
        f"s1,{_txt(r, 's1_b_h2.txt', np.linspace(-1, 1, 9))},q2,b,h2",
        f"s1,{_txt(r, 's1_b_h3.dat', np.full(4760, 0.5), header='volts')},q2,b,h3",
        f"s2,{_npy(r, 's2_a_h2.npy', np.ones(3, dtype=np.float32))},q10,a,h2",
        f"s2,{_csv(r, 's2_a_h3.csv', [4, 3, 2, 1], header=None)},q10,a,h3",
        f"s2,{_npy(r, 's2_a_h4.npy', [7.0, 7.0])},q10,a,h4",  # a channel not requested: ignored
    ]
    _write_manifest(r, rows)
    return r


# ---- resampling -----------------------------------------------------------------------------------
def test_ramp_stays_a_ramp():
    np.testing.assert_allclose(resample_linear(np.arange(10.0), 4760), np.linspace(0.0, 9.0, 4760), atol=1e-12)
    np.testing.assert_allclose(resample_linear(np.linspace(3, -3, 5000), 4760), np.linspace(3, -3, 4760), atol=1e-12)


def test_three_points_to_five_gives_the_midpoints():
    np.testing.assert_allclose(resample_linear(np.array([0.0, 2.0, 10.0]), 5), [0.0, 1.0, 2.0, 6.0, 10.0])


def test_shortening_by_hand():
    # 5 samples at t = 0, .25, .5, .75, 1 -> 3 samples at t = 0, .5, 1: the 1st, 3rd and 5th values.
    np.testing.assert_allclose(resample_linear(np.array([1.0, 5.0, 2.0, 8.0, 3.0]), 3), [1.0, 2.0, 3.0])
    # 4 samples at t = 0, 1/3, 2/3, 1 -> t = 1/2 lies midway between the 2nd and 3rd.
    np.testing.assert_allclose(resample_linear(np.array([0.0, 3.0, 6.0, 0.0]), 3), [0.0, 4.5, 0.0])


def test_same_length_is_unchanged():
    x = np.random.default_rng(0).normal(size=4760)
    assert np.array_equal(resample_linear(x, 4760), x)


# ---- reading and grouping ---------------------------------------------------------------------------
def test_reads_all_three_formats(tmp_path):
    np.testing.assert_array_equal(read_signal(tmp_path / _npy(tmp_path, "a.npy", [1, 2, 3])), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(read_signal(tmp_path / _npy(tmp_path, "col.npy", [[1.5], [2.5]])), [1.5, 2.5])
    np.testing.assert_array_equal(read_signal(tmp_path / _csv(tmp_path, "b.csv", [0.25, -1e-3, 7])), [0.25, -1e-3, 7.0])
    np.testing.assert_array_equal(read_signal(tmp_path / _csv(tmp_path, "nh.csv", [1, 2], header=None)), [1.0, 2.0])
    (tmp_path / "c.txt").write_text("time_signal\n\n1e-6\n  -2.5  \n\n3\n")
    np.testing.assert_array_equal(read_signal(tmp_path / "c.txt"), [1e-6, -2.5, 3.0])


def test_groups_by_sample_and_sensor(folder):
    ds = HarmonicSignalDataset(folder)
    assert len(ds) == 3
    assert ds.keys == [("s1", "a"), ("s1", "b"), ("s2", "a")]
    assert ds.channels == ("h2", "h3") and ds.sensors == ["a", "b"]
    assert ds.files[0] == {"h2": folder / "s1_a_h2.npy", "h3": folder / "s1_a_h3.csv"}
    x, y = ds[0]
    assert x.shape == (2, 4760) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.ndim == 0
    torch.testing.assert_close(x[0], torch.linspace(0, 4, 4760))  # ramp 0..4
    t = np.linspace(0, 1, 4760)
    expected_h3 = np.interp(t, [0, 0.5, 1], [0, 2, 10])
    np.testing.assert_allclose(x[1].numpy(), expected_h3, rtol=1e-6, atol=1e-6)
    xb, _ = ds[1]
    torch.testing.assert_close(xb[0], torch.linspace(-1, 1, 4760))
    assert torch.equal(xb[1], torch.full((4760,), 0.5))  # already 4760 long: untouched
    x2, _ = ds[-1]
    assert torch.equal(x2[0], torch.ones(4760))
    torch.testing.assert_close(x2[1], torch.linspace(4, 1, 4760))


def test_labels_sorted_numerically_when_integers(folder):
    ds = HarmonicSignalDataset(folder)
    assert ds.labels == ["q10", "q2"]  # not all integers: string order
    assert ds.targets.tolist() == [1, 1, 0] and ds.label_names == ["q2", "q2", "q10"]
    text = (folder / "manifest.csv").read_text().replace(",q2,", ",2,").replace(",q10,", ",10,")
    (folder / "numeric.csv").write_text(text)
    ds = HarmonicSignalDataset(folder, manifest="numeric.csv")
    assert ds.labels == ["2", "10"]
    assert [int(ds[i][1]) for i in range(3)] == [0, 0, 1]


def test_explicit_labels_fix_the_indices(folder):
    ds = HarmonicSignalDataset(folder, labels=["q0", "q2", "q10"])
    assert ds.labels == ["q0", "q2", "q10"]
    assert [int(ds[i][1]) for i in range(len(ds))] == [1, 1, 2]


def test_sensor_filter_channels_and_length(folder):
    ds = HarmonicSignalDataset(folder, sensor="b")
    assert ds.keys == [("s1", "b")]
    ds = HarmonicSignalDataset(folder, sensor=["a"], channels=("h3", "h2"), length=5)
    assert ds.keys == [("s1", "a"), ("s2", "a")]
    x, _ = ds[0]
    assert x.shape == (2, 5)
    torch.testing.assert_close(x[0], torch.tensor([0.0, 1.0, 2.0, 6.0, 10.0]))  # h3 first, as requested
    torch.testing.assert_close(x[1], torch.arange(5.0))
    one = HarmonicSignalDataset(folder, channels=("h4",), length=3)
    assert one.keys == [("s2", "a")] and torch.equal(one[0][0], torch.full((1, 3), 7.0))


def test_manifest_elsewhere_with_extra_columns_and_any_case(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _npy(data, "x.npy", [0.0, 1.0])
    _npy(data, "y.npy", [1.0, 0.0])
    manifest = _write_manifest(
        tmp_path,
        ["run1,x.npy,L,c,h2,first", f"run1,{data / 'y.npy'},L,c,h3,second"],
        header="Sample, File ,LABEL,sensor,channel,notes",
        name="list.csv",
    )
    ds = HarmonicSignalDataset(data, manifest=manifest, length=3)
    assert ds.labels == ["L"]
    torch.testing.assert_close(ds[0][0], torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]]))


def test_works_with_a_dataloader(folder):
    ds = HarmonicSignalDataset(folder)
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert x.shape == (3, 2, 4760) and y.tolist() == [1, 1, 0]


# ---- bad input ---------------------------------------------------------------------------------------
def _one_sample(root: Path, h2: str, h3: str, label: str = "A") -> None:
    _write_manifest(root, [f"s1,{h2},{label},a,h2", f"s1,{h3},{label},a,h3"])


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(InputError, match="signal folder not found"):
        HarmonicSignalDataset(tmp_path / "nope")
    with pytest.raises(InputError, match="manifest not found: .*manifest.csv"):
        HarmonicSignalDataset(tmp_path)
    (tmp_path / "manifest.csv").write_text("")
    with pytest.raises(InputError, match="is empty"):
        HarmonicSignalDataset(tmp_path)
    _write_manifest(tmp_path, [])
    with pytest.raises(InputError, match="lists no signals"):
        HarmonicSignalDataset(tmp_path)


def test_missing_column(tmp_path):
    _npy(tmp_path, "x.npy", [1.0, 2.0])
    _write_manifest(tmp_path, ["x.npy,A,a,h2"], header="file,label,sensor,channel")
    with pytest.raises(InputError, match="no column 'sample'"):
        HarmonicSignalDataset(tmp_path)


def test_empty_field_names_the_line(tmp_path):
    _write_manifest(tmp_path, ["s1,x.npy,A,a,h2", "s1,,A,a,h3"])
    with pytest.raises(InputError, match="manifest.csv line 3: empty file"):
        HarmonicSignalDataset(tmp_path)


def test_missing_file_names_row_and_file(tmp_path):
    _one_sample(tmp_path, _npy(tmp_path, "x.npy", [1.0, 2.0]), "gone.csv")
    with pytest.raises(InputError, match=r"manifest.csv line 3: signal file not found: .*gone.csv"):
        HarmonicSignalDataset(tmp_path)


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("bad.csv", "amplitude\n1.0\noops\n3.0\n", r"bad.csv line 3: 'oops' is not a number"),
        ("wide.csv", "1.0,2.0\n3.0,4.0\n", r"wide.csv line 1: expected one value per line, got 2 fields"),
        ("bad.txt", "1.0 2.0\n", r"bad.txt line 1: expected one value per line"),
        ("bad.npy", "not a numpy file", r"cannot read signal file .*bad.npy"),
        ("empty.txt", "", r"empty.txt has 0 sample\(s\)"),
        ("header_only.csv", "amplitude\n", r"header_only.csv has 0 sample\(s\)"),
        ("single.txt", "4.2\n", r"single.txt has 1 sample\(s\)"),
        ("nan.csv", "v\n1.0\nnan\n2.0\n", r"nan.csv holds 1 NaN/Inf value\(s\), the first at index 1"),
        ("inf.txt", "1.0\n2.0\ninf\n-inf\n", r"inf.txt holds 2 NaN/Inf value\(s\), the first at index 2"),
    ],
)
def test_unparsable_or_invalid_signal_files(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    _one_sample(tmp_path, _npy(tmp_path, "ok.npy", [1.0, 2.0]), name)
    with pytest.raises(InputError, match=match) as err:
        HarmonicSignalDataset(tmp_path)
    assert "manifest.csv line 3" in str(err.value)


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros((3, 4)), r"shape \(3, 4\); expected a 1-D signal"),
        (np.array([np.nan, 1.0, 2.0]), "NaN/Inf"),
        (np.array([1.0]), r"1 sample\(s\)"),
        (np.array([], dtype=np.float64), r"0 sample\(s\)"),
        (np.array(["a", "b"]), "not hold a real numeric array"),
    ],
)
def test_invalid_npy_arrays(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    _one_sample(tmp_path, "bad.npy", _npy(tmp_path, "ok.npy", [1.0, 2.0]))
    with pytest.raises(InputError, match=rf"manifest.csv line 2: .*bad.npy.*{match}"):
        HarmonicSignalDataset(tmp_path)


def test_sample_missing_a_channel(tmp_path):
    _write_manifest(
        tmp_path,
        [
            f"s1,{_npy(tmp_path, 'x.npy', [1.0, 2.0])},A,a,h2",
            f"s1,{_npy(tmp_path, 'y.npy', [1.0, 2.0])},A,a,h3",
            f"s2,{_npy(tmp_path, 'z.npy', [1.0, 2.0])},A,a,h2",
        ],
    )
    with pytest.raises(InputError, match="line 4: sample 's2' sensor 'a' has no 'h3' channel"):
        HarmonicSignalDataset(tmp_path)
    assert len(HarmonicSignalDataset(tmp_path, channels=["h2"])) == 2


def test_duplicate_channel_and_conflicting_label(tmp_path):
    x = _npy(tmp_path, "x.npy", [1.0, 2.0])
    _write_manifest(tmp_path, [f"s1,{x},A,a,h2", f"s1,{x},A,a,h2"])
    with pytest.raises(InputError, match="line 3: channel 'h2' of sample 's1' sensor 'a' is listed twice"):
        HarmonicSignalDataset(tmp_path)
    _write_manifest(tmp_path, [f"s1,{x},A,a,h2", f"s1,{x},B,a,h3"])
    with pytest.raises(InputError, match="line 3: label 'B' .* conflicts with 'A' on line 2"):
        HarmonicSignalDataset(tmp_path)


def test_unknown_label_with_explicit_labels(folder):
    with pytest.raises(InputError, match=r"line 6: label 'q10' of sample 's2' is not in labels=\['q2'\]"):
        HarmonicSignalDataset(folder, labels=["q2"])


def test_bad_options(folder):
    with pytest.raises(InputError, match="no rows for sensor"):
        HarmonicSignalDataset(folder, sensor="z")
    with pytest.raises(InputError, match="no rows with channels"):
        HarmonicSignalDataset(folder, channels=("h5",))
    with pytest.raises(InputError, match="length"):
        HarmonicSignalDataset(folder, length=1)
    with pytest.raises(InputError, match="length"):
        HarmonicSignalDataset(folder, length=0)
    with pytest.raises(InputError, match="channels"):
        HarmonicSignalDataset(folder, channels=("h2", "h2"))
    with pytest.raises(InputError, match="channels"):
        HarmonicSignalDataset(folder, channels=())
    with pytest.raises(InputError, match="labels"):
        HarmonicSignalDataset(folder, labels=["q2", "q2"])
    with pytest.raises(InputError, match="sensor"):
        HarmonicSignalDataset(folder, sensor=3)
    with pytest.raises(IndexError):
        HarmonicSignalDataset(folder)[3]
