"""Hard negatives drawn into training crops: each kind's geometry checked on a flat grey surface
against the distance to the shape it reports (computed here from its angle and centre)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from crackscope.data.camera_augment import CameraAugment
from crackscope.data.hard_negatives import KINDS, LINE_KINDS, draw_hard_negative
from crackscope.errors import InputError

GREY = 0.5


def _flat(c=3, h=96, w=128):
    return torch.full((c, h, w), GREY)


def _line_distance(info, h, w):
    """Signed distance of every pixel centre to the line through ``centre`` at ``angle_rad``: the
    cross product of (pixel - centre) with the line's unit direction (cos a, sin a) in (x, y)."""
    a, (cy, cx) = info["angle_rad"], info["centre"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return (xx - cx) * math.sin(a) - (yy - cy) * math.cos(a)


@pytest.mark.parametrize("seed", range(5))
def test_joint_is_a_dark_straight_groove_of_its_width(seed):
    out, info = draw_hard_negative(_flat(), np.random.default_rng(seed), "joint")
    d = np.abs(_line_distance(info, 96, 128))
    v = out[0].numpy()
    inside, outside = d <= info["width_px"] / 2 - 0.5, d >= info["width_px"] / 2 + 0.5
    assert inside.any() and outside.any()
    np.testing.assert_allclose(v[inside], GREY * (1 - info["depth"]), atol=1e-5)
    np.testing.assert_allclose(v[outside], GREY, atol=1e-6)  # untouched beyond the groove


@pytest.mark.parametrize("seed", range(5))
def test_shadow_darkens_one_side_of_its_penumbra(seed):
    out, info = draw_hard_negative(_flat(), np.random.default_rng(seed), "shadow")
    d = _line_distance(info, 96, 128)
    v, soft = out[0].numpy(), info["penumbra_px"]
    np.testing.assert_allclose(v[d >= soft / 2], GREY * (1 - info["depth"]), atol=1e-5)
    np.testing.assert_allclose(v[d <= -soft / 2], GREY, atol=1e-6)
    band = np.abs(d) < soft / 2  # the penumbra: between the two levels, darker further in
    assert np.all((v[band] <= GREY + 1e-6) & (v[band] >= GREY * (1 - info["depth"]) - 1e-6))


def test_paint_is_brighter_and_stains_and_tyres_darker_where_they_lie():
    rng = np.random.default_rng(3)
    out, info = draw_hard_negative(_flat(), rng, "paint")
    d = np.abs(_line_distance(info, 96, 128))
    luminance = 0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]  # white or yellow: brighter than grey
    assert (luminance[torch.from_numpy(d <= info["width_px"] / 2 - 0.5)] > GREY).all()
    np.testing.assert_allclose(out[:, d >= info["width_px"] / 2 + 0.5].numpy(), GREY, atol=1e-6)
    out, info = draw_hard_negative(_flat(), np.random.default_rng(4), "stain")
    cy, cx = info["centre"]
    yy, xx = np.mgrid[0:96, 0:128]
    r = np.hypot(yy - cy, xx - cx)
    # the blob's radius wobbles by at most 3 x 25 %: beyond 1.75 r plus its soft edge it is untouched
    np.testing.assert_allclose(out[0].numpy()[r > 1.75 * info["radius_px"] + 10], GREY, atol=1e-6)
    if (r < 0.25 * info["radius_px"]).any():
        np.testing.assert_allclose(out[0].numpy()[r < 0.25 * info["radius_px"]], GREY * (1 - info["depth"]), atol=1e-5)
    out, info = draw_hard_negative(_flat(), np.random.default_rng(5), "tyre")
    cy, cx = (int(round(v)) for v in info["centre"])
    assert out[0, cy, cx] < GREY  # the band runs through its centre


def test_every_kind_keeps_the_shape_and_range_and_is_seeded():
    image = torch.rand(3, 64, 80)
    kinds = set()
    for seed in range(60):
        a, info = draw_hard_negative(image, np.random.default_rng(seed))
        b, _ = draw_hard_negative(image, np.random.default_rng(seed))
        assert a.shape == image.shape and a.dtype == image.dtype and 0 <= a.min() and a.max() <= 1
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        kinds.add(info["kind"])
    assert kinds == set(KINDS)  # drawn uniformly: 60 draws of 8 kinds hit each
    grey, _ = draw_hard_negative(torch.full((1, 32, 32), GREY), np.random.default_rng(0), "paint")
    assert grey.shape == (1, 32, 32)
    with pytest.raises(InputError, match="hard negative kind 'crack' is not one of joint"):
        draw_hard_negative(image, np.random.default_rng(0), "crack")


@pytest.mark.parametrize("seed", range(6))
def test_text_lies_around_its_anchor_in_its_colour(seed):
    h, w = 96, 128
    out, info = draw_hard_negative(_flat(h=h, w=w), np.random.default_rng(seed), "text")
    changed = (out - GREY).abs().amax(0).numpy() > 1e-6
    assert changed.any()
    # every stroke lies within one text line of the anchor (its left end, mid-height): a character is
    # at most one height wide, plus the stroke's width and the rotation's antialiasing
    yy, xx = np.mgrid[0:h, 0:w]
    ay, ax = info["anchor"]
    reach = (len(info["text"]) + 1) * info["height_px"] + 3
    assert np.hypot(yy - ay, xx - ax)[changed].max() <= reach
    # drawn towards its colour: dark ink darkens the grey, white brightens it
    dark = info["colour"] in ("black", "grey", "blue")
    lum = (0.299 * out[0] + 0.587 * out[1] + 0.114 * out[2]).numpy()
    assert (lum[changed] < GREY).all() if dark else (lum[changed] > GREY).all()


@pytest.mark.parametrize("seed", range(6))
def test_ruler_is_an_opaque_band_from_its_tip_with_ticks_along_one_edge(seed):
    h, w = 96, 128
    out, info = draw_hard_negative(_flat(h=h, w=w), np.random.default_rng(seed), "ruler")
    d = _line_distance(info, h, w)
    a, (cy, cx) = info["angle_rad"], info["centre"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    along = (xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)
    half, spacing = info["width_px"] / 2, info["tick_spacing_px"]
    v = out.numpy()
    # outside the band, and before the tip, the surface is untouched
    untouched = (np.abs(d) >= half + 0.5) | (along <= -0.5)
    np.testing.assert_allclose(v[:, untouched], GREY, atol=1e-6)
    # inside, away from the tick edge and between ticks: the tape's colour, opaque
    colours = {"yellow": (0.92, 0.8, 0.2), "white": (0.93, 0.93, 0.9), "grey": (0.65, 0.66, 0.68)}
    plain = (np.abs(d) <= half - 0.5) & (d > -half + 0.6 * 2 * half) & (along >= 0.5)
    if plain.any():
        np.testing.assert_allclose(v[:, plain].T, np.broadcast_to(colours[info["colour"]], (plain.sum(), 3)), atol=1e-5)
    # the ticks: darker than the tape, near whole multiples of the spacing from the tip, at the edge
    tape = np.asarray(colours[info["colour"]]).reshape(3, 1, 1)
    darker = (v < tape - 0.05).any(0) & (np.abs(d) <= half - 0.5) & (along >= 0.5)
    if darker.any():
        off = np.abs(along[darker] / spacing - np.round(along[darker] / spacing)) * spacing
        assert off.max() <= 1.0
        assert (d[darker] + half).max() <= 0.55 * 2 * half + 1.0


def test_kinds_can_be_restricted():
    image = _flat()
    drawn = {draw_hard_negative(image, np.random.default_rng(s), kinds=("text", "ruler"))[1]["kind"] for s in range(20)}
    assert drawn == {"text", "ruler"}
    assert CameraAugment(p_hard_negative=1.0).params["hard_negative_kinds"] == KINDS
    assert CameraAugment(hard_negative_kinds=list(LINE_KINDS)).params["hard_negative_kinds"] == LINE_KINDS
    for bad in (["crack"], [], "text"):
        with pytest.raises(InputError, match="hard_negative_kinds"):
            CameraAugment(hard_negative_kinds=bad)
