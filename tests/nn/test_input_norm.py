"""Per-image input standardisation (crackscope.nn.input_norm) against its formula and its purpose:
the output does not change when a photo is made brighter, darker or flatter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crackscope.engine.config import load_train_config
from crackscope.engine.runs import build_model
from crackscope.errors import InputError
from crackscope.nn.input_norm import PerImageStandardize, StandardizedInput


def test_standardisation_equals_the_formula():
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (2, 3, 8, 9)))
    out = PerImageStandardize(min_std=1e-6)(x).numpy()
    a = x.numpy()
    for b in range(2):
        centred = a[b] - a[b].mean(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(out[b], centred / np.sqrt((centred**2).mean()), atol=1e-12)
        np.testing.assert_allclose(out[b].mean(axis=(1, 2)), 0.0, atol=1e-12)
        assert out[b].std() == pytest.approx(1.0)


def test_brightness_and_contrast_changes_do_not_reach_the_model():
    x = torch.from_numpy(np.random.default_rng(1).uniform(0.3, 0.7, (1, 3, 16, 16)))
    norm = PerImageStandardize()
    for gain, offset in ((0.5, 0.1), (1.3, -0.2), (2.0, 0.05)):
        torch.testing.assert_close(norm(gain * x + offset), norm(x))
    # a colour cast (a per-channel offset) is removed as well
    torch.testing.assert_close(norm(x + torch.tensor([0.1, -0.05, 0.0], dtype=x.dtype).view(1, 3, 1, 1)), norm(x))


def test_a_uniform_image_gives_zeros_and_a_flat_one_is_not_blown_up():
    norm = PerImageStandardize(min_std=0.03)
    assert float(norm(torch.full((1, 3, 8, 8), 0.6)).abs().max()) < 1e-4  # zero up to float rounding
    flat = 0.5 + 0.001 * torch.from_numpy(np.random.default_rng(2).standard_normal((1, 1, 16, 16)))
    assert float(norm(flat).abs().max()) < 0.2  # divided by the floor 0.03, not by its own std 0.001


def test_input_norm_in_the_model_config(tmp_path):
    base = {
        "name": "r",
        "pipeline": "surface",
        "data": {"root": str(tmp_path), "format": "folder", "in_channels": 3},
        "model": {"name": "unet", "base_channels": 4, "depth": 2, "input_norm": "per_image"},
        "loss": {"name": "bce"},
    }
    model = build_model(load_train_config(None, base=base), {"in_channels": 3, "classes": 1})
    assert isinstance(model, StandardizedInput)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(model(x), model.net(model.standardize(x)))
    torch.testing.assert_close(model(0.5 * x + 0.2), model(x), atol=1e-5, rtol=1e-4)
    assert all(k.startswith("net.") for k in model.state_dict())
    with pytest.raises(InputError, match="input_norm='per_pixel'"):
        build_model(
            load_train_config(None, base={**base, "model": {**base["model"], "input_norm": "per_pixel"}}),
            {"in_channels": 3, "classes": 1},
        )
