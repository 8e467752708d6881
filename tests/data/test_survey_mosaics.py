"""Survey mosaics: crack and sound tiles cut from labelled photos, put together seeded."""

from __future__ import annotations

import numpy as np
import pytest

from crackscope.data.survey_mosaics import sound_tile_origins, survey_mosaics, tile_bank
from crackscope.errors import InputError


def _photo():
    """A 256 x 256 photo whose pixels hold their own coordinates (channel 0 = row / 255, channel 1 =
    column / 255) with a labelled crack down column 10."""
    y, x = np.mgrid[0:256, 0:256].astype(np.float32) / 255
    image = np.stack([y, x, np.zeros_like(y)])
    truth = np.zeros((256, 256), bool)
    truth[:, 10] = True
    return image, truth


def test_sound_tiles_by_hand():
    """Crack-free: columns 27 ... 255 (more than 16 px from column 10). On the 16-px lattice the
    first 64-px square that fits is at column 32, then 96 and 160 (224 + 64 passes the border);
    rows 0, 64, 128, 192: 12 squares, none overlapping."""
    origins = sound_tile_origins(_photo()[1], 64, 16)
    assert origins == [(y, x) for y in (0, 64, 128, 192) for x in (32, 96, 160)]
    assert sound_tile_origins(np.zeros((40, 300), bool), 64, 16) == []  # smaller than a tile


def test_mosaics_place_whole_tiles_with_their_labels():
    image, truth = _photo()
    bank = tile_bank(lambda stem: (image, truth), ["p", "q"], tile=64, clearance_px=16)
    # per photo, the 4 grid squares of column 0 hold the crack, and 12 squares are sound
    assert len(bank.crack) == 8 and len(bank.sound) == 24
    made = list(survey_mosaics(bank, 3, side=256, crack_share=(0.1, 0.15), seed=5))
    again = list(survey_mosaics(bank, 3, side=256, crack_share=(0.1, 0.15), seed=5))
    for (im, tr, info), (im2, tr2, _) in zip(made, again):
        np.testing.assert_array_equal(im, im2)
        np.testing.assert_array_equal(tr, tr2)
        # 16 places, a share in [0.1, 0.15] of them is 1.6 ... 2.4: two crack tiles of 64 crack pixels
        assert info["crack_tiles"] == 2 and info["tiles"] == 16 and tr.sum() == 2 * 64
        for p, where in enumerate(info["sources"]):
            y0, x0 = (int(v) for v in where.split("@")[1].split(","))
            y, x = (p // 4) * 64, (p % 4) * 64
            # the tile's pixels are the photo's at its origin: its coordinates say where it came from
            np.testing.assert_allclose(im[0, y, x] * 255, y0, atol=1e-3)
            np.testing.assert_allclose(im[1, y, x] * 255, x0, atol=1e-3)
            assert tr[y : y + 64, x : x + 64].any() == (x0 == 0)
        assert len(set(info["sources"])) == 16  # no tile twice in one mosaic
    assert any(a[2]["sources"] != b[2]["sources"] for a, b in zip(made, made[1:]))
    with pytest.raises(InputError, match="side 200 must be a multiple of the tile side 64"):
        next(survey_mosaics(bank, 1, side=200))
    # 36 places at a share of 0.2: 7 crack tiles and 29 sound ones, of which the photos give 24
    with pytest.raises(InputError, match="needs 7 crack and 29 sound tiles; the photos give 8 and 24"):
        next(survey_mosaics(bank, 1, side=384, crack_share=(0.2, 0.2)))
    with pytest.raises(InputError, match="needs 9 crack and 0 sound tiles"):  # 9 places at 0.95
        next(survey_mosaics(bank, 1, side=192, crack_share=(0.95, 0.95)))
