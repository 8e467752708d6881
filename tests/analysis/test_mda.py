"""MDA on synthetic data whose manifold is known, feature extraction with hooks, the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from crackscope.analysis.mda import (
    MDAResult,
    discover_manifold,
    extract_features,
    mda_embedding,
    plot_mda,
)
from crackscope.errors import InputError

N = 240


def _curve(seed: int, n: int = N):
    """Outputs on a helix arc Y = (cos t, sin t, t), t in [0, 3]; features a smooth 50-D image of t."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 3.0, n)
    outputs = np.stack([np.cos(t), np.sin(t), t], axis=1) + 0.02 * rng.normal(size=(n, 3))
    freq, phase = rng.uniform(0.5, 2.0, 50), rng.uniform(0.0, 2 * np.pi, 50)
    features = np.sin(t[:, None] * freq + phase) + 0.1 * rng.normal(size=(n, 50))
    noise = rng.normal(size=(n, 50))
    return t, outputs, features, noise


def _first_principal_coordinate(e: np.ndarray) -> np.ndarray:
    ec = e - e.mean(axis=0)
    return ec @ np.linalg.svd(ec, full_matrices=False)[2][0]


@pytest.fixture(scope="module")
def curve():
    return _curve(0)


@pytest.fixture(scope="module")
def embedded(curve):
    _, outputs, features, noise = curve
    return {
        "smooth features": mda_embedding(features, outputs, seed=0),
        "noise features": mda_embedding(noise, outputs, seed=0),
    }


# ---- step 1 ------------------------------------------------------------------------------------
def test_pseudo_labels_by_hand():
    # sample 0 is 2; the farthest output from it is 9 (index 4), the reference end point.
    # distances to 9: [7, 9, 4, 8, 0]; n = 5, range 9: Sturges width 9 / (log2 5 + 1) = 2.71,
    # FD width 2 * IQR(4) / 5^(1/3) = 4.68 (above half the sqrt width, 2.01) -> 2.71 -> 4 bins
    # of width 2.25.
    reference, distances, bins, labels = discover_manifold(np.array([[2.0], [0.0], [5.0], [1.0], [9.0]]))
    assert reference == 4
    np.testing.assert_allclose(distances, [7, 9, 4, 8, 0])
    np.testing.assert_allclose(bins, [0, 2.25, 4.5, 6.75, 9])
    np.testing.assert_array_equal(labels, [3, 3, 1, 3, 0])


def test_pseudo_labels_are_monotone_histogram_bins(curve):
    _, outputs, _, _ = curve
    reference, distances, bins, labels = discover_manifold(outputs)
    # the reference is an end of the arc (t near 0 or 3) and the distance grows along the arc
    np.testing.assert_allclose(distances, np.linalg.norm(outputs - outputs[reference], axis=1))
    assert distances[reference] == 0.0
    order = np.argsort(distances, kind="stable")
    assert np.all(np.diff(labels[order]) >= 0)
    # the bins are numpy's 'auto' rule, and the labels are exactly np.histogram's bins
    np.testing.assert_array_equal(bins, np.histogram_bin_edges(distances, bins="auto"))
    n_bins = len(bins) - 1
    assert n_bins >= math.ceil(math.log2(N) + 1)  # 'auto' is never coarser than Sturges
    np.testing.assert_array_equal(np.bincount(labels, minlength=n_bins), np.histogram(distances, bins)[0])
    assert labels.min() == 0 and labels.max() == n_bins - 1


# ---- steps 2 and 3 -----------------------------------------------------------------------------
def test_embedding_preserves_the_output_ordering(embedded):
    smooth, noise = embedded["smooth features"], embedded["noise features"]
    for res in (smooth, noise):
        assert isinstance(res, MDAResult)
        assert res.embedding.shape == (N, 2) and np.isfinite(res.embedding).all()
        assert res.method == "lda"
        assert 1 <= res.projection.shape[1] <= min(16, len(res.bins) - 2)
    rho_smooth = spearmanr(smooth.distances, _first_principal_coordinate(smooth.embedding))[0]
    rho_noise = spearmanr(noise.distances, _first_principal_coordinate(noise.embedding))[0]
    assert abs(rho_smooth) > 0.8, rho_smooth
    assert abs(rho_noise) < 0.35, rho_noise


def test_embedding_is_deterministic_and_raw_mode_works(curve, embedded):
    _, outputs, features, _ = curve
    again = mda_embedding(features, outputs, seed=0)
    np.testing.assert_array_equal(again.embedding, embedded["smooth features"].embedding)
    raw = mda_embedding(features, outputs, project=False, seed=0)
    assert raw.method == "none" and raw.embedding.shape == (N, 2)
    rho = spearmanr(raw.distances, _first_principal_coordinate(raw.embedding))[0]
    assert abs(rho) > 0.8, rho


def test_constant_outputs_fall_back_to_pca(curve):
    _, _, features, _ = curve
    res = mda_embedding(features[:40], np.ones((40, 3)), seed=0)
    assert res.method == "pca" and len(res.bins) == 2 and np.all(res.pseudo_labels == 0)
    assert res.embedding.shape == (40, 2)


def test_bad_inputs_are_input_errors(curve):
    _, outputs, features, _ = curve
    with pytest.raises(InputError, match="samples"):
        mda_embedding(features, outputs[:-1])
    with pytest.raises(InputError, match="NaN"):
        mda_embedding(np.full_like(features, np.nan), outputs)
    with pytest.raises(InputError, match="same features"):
        mda_embedding(np.ones_like(features), outputs)
    with pytest.raises(InputError, match="at least"):
        mda_embedding(features[:3], outputs[:3])


# ---- feature extraction ------------------------------------------------------------------------
class _TinySegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.body = nn.Conv2d(4, 3, 3, padding=1)
        self.head = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(self.stem(x))))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = _TinySegmenter().train()
    x = torch.randn(10, 2, 6, 6)
    mask = (torch.rand(10, 1, 6, 6) > 0.7).float()
    return model, x, mask, DataLoader(TensorDataset(x, mask), batch_size=4, shuffle=False)


def test_extract_features_shapes_and_values(tiny):
    model, x, mask, loader = tiny
    got = extract_features(model, loader, ["stem.0", "body", "head"], max_samples=7)
    assert set(got) == {"stem.0", "body", "head", "outputs", "targets"}
    assert got["stem.0"].shape == (7, 4 * 36)
    assert got["body"].shape == (7, 3 * 36)
    assert got["head"].shape == (7, 36)
    assert got["outputs"].shape == (7, 36) and got["targets"].shape == (7, 36)
    assert all(v.dtype == np.float32 for v in got.values())
    with torch.no_grad():
        conv = model.stem[0](x[:7])  # before the in-place ReLU that follows it
        logits = model(x[:7])
    np.testing.assert_allclose(got["stem.0"], conv.reshape(7, -1).numpy(), rtol=1e-5, atol=1e-6)
    assert (got["stem.0"] < 0).any()  # the hooked copy was not overwritten by ReLU(inplace=True)
    np.testing.assert_allclose(got["head"], logits.reshape(7, -1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["outputs"], torch.sigmoid(logits).reshape(7, -1).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(got["targets"], mask[:7].reshape(7, -1).numpy())
    # the model is left as it was: training mode, no hooks
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    # without a limit every sample is collected
    assert extract_features(model, loader, ["body"])["body"].shape == (10, 3 * 36)


def test_extract_features_unknown_layer(tiny):
    model, _, _, loader = tiny
    with pytest.raises(InputError, match=r"'bodyy'.*stem\.0.*body"):
        extract_features(model, loader, ["body", "bodyy"])
    assert all(not m._forward_hooks for m in model.modules())


def test_mda_on_extracted_features(tiny):
    model, _, _, loader = tiny
    got = extract_features(model, loader, ["body"])
    res = mda_embedding(got["body"], got["targets"], n_neighbors=30, seed=1)
    assert res.embedding.shape == (10, 2)


# ---- figure ------------------------------------------------------------------------------------
def test_plot_mda_writes_a_png(embedded, tmp_path):
    out = plot_mda(embedded, tmp_path / "figs" / "mda.png", title="synthetic helix")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 400 and height > 200
    assert [p.name for p in out.parent.iterdir()] == ["mda.png"]  # no temporary file left behind
    with pytest.raises(InputError):
        plot_mda({}, tmp_path / "empty.png")
