"""Following a crack out of the flagged tiles (``InspectOptions.follow``,
crackscope.deploy.cascade.core.tiles_reached): against hand-worked tile cells and against the
baseline that segments every window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crackscope.deploy.cascade import inspect_image, segment_all_tiles
from crackscope.deploy.cascade.core import tiles_reached
from crackscope.deploy.tiling import blend_probabilities, blend_windows, plan_windows, segment_windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T = 32  # tile side
H, W = 32, 6 * T  # one row of six tiles, cells [32 k, 32 (k + 1))
CRACK_END = 150  # the drawn crack runs from x = 0 to x = 149: tiles 0-4; tile 5 starts at 160


class Pixels:
    """A segmenter stub whose crack probability is the pixel value; it records the windows it ran."""

    threshold = 0.5
    channels = 1

    def __init__(self):
        self.windows = 0

    def __call__(self, tiles):
        self.windows += len(tiles)
        return tiles[:, 0]


def _line_image() -> np.ndarray:
    image = np.zeros((1, H, W), np.float32)
    image[0, 14:17, :CRACK_END] = 1.0  # a 3-px horizontal crack
    return image


def _first_tile_only(tiles):
    return torch.tensor([0.9] + [0.1] * (len(tiles) - 1))


# ---- which tiles a crack reaches: worked out by hand ------------------------------------------------------
CELLS = np.array([[0, 5, 0, 5], [0, 5, 5, 10], [5, 10, 0, 5], [5, 10, 5, 10]])  # a 10 x 10 image, 2 x 2 tiles


@pytest.mark.parametrize(
    "pixel,reach,done,expected",
    [
        ((2, 6), 0, [True, False, False, False], [False, True, False, False]),  # inside tile 1
        ((2, 3), 0, [True, False, False, False], [False, False, False, False]),  # inside the done tile only
        ((2, 3), 2, [True, False, False, False], [False, True, False, False]),  # 2 px from tile 1 (x0 = 5)
        ((2, 3), 1, [True, False, False, False], [False, False, False, False]),  # 2 px is beyond 1 px
        ((4, 4), 1, [True, False, False, False], [False, True, True, True]),  # the corner: diagonal too
        ((4, 4), 1, [True, True, True, True], [False, False, False, False]),  # nothing left to reach
    ],
)
def test_tiles_reached_by_hand(pixel, reach, done, expected):
    crack = np.zeros((10, 10), bool)
    crack[pixel] = True
    assert tiles_reached(crack, CELLS, np.array(done), reach).tolist() == expected


def test_no_crack_reaches_no_tile():
    assert not tiles_reached(np.zeros((10, 10), bool), CELLS, np.zeros(4, bool)).any()


# ---- windows segmented apart and blended in index order are those of one pass ------------------------------
def test_blending_windows_segmented_in_several_calls_is_one_pass_bit_for_bit():
    rng = np.random.default_rng(0)
    image = torch.as_tensor(rng.random((1, 70, 100)).astype(np.float32))
    plan = plan_windows(70, 100, 32, 0.25)
    canvas = torch.nn.functional.pad(image, (0, plan.canvas[1] - 100, 0, plan.canvas[0] - 70))
    seg = Pixels()
    whole, den = blend_windows(canvas, plan, seg, None, 7)
    order = rng.permutation(len(plan))  # segmented in three calls, in no particular order
    parts = {}
    for chunk in np.array_split(order, 3):
        parts.update(segment_windows(canvas, plan, seg, chunk, 5))
    again, den_again = blend_probabilities(plan, parts)
    assert np.array_equal(whole, again) and np.array_equal(den, den_again)
    assert np.allclose(whole[:70, :100], image[0].numpy(), atol=1e-6)  # the weights sum to 1


# ---- following a crack along a row of tiles -------------------------------------------------------------------
@pytest.mark.parametrize("overlap", [0.0, 0.25])
def test_follow_rounds_reach_one_more_tile_each_along_a_crack(overlap):
    image = _line_image()
    crack_cells = np.zeros((H, W), bool)
    crack_cells[14:17, :CRACK_END] = True
    for rounds, tiles in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 5), (50, 5)]:
        seg = Pixels()
        r = inspect_image(image, _first_tile_only, seg, tile=T, threshold=0.5, overlap=overlap, follow=rounds)
        segmented = r.flagged | r.followed
        assert r.flagged.tolist() == [True] + [False] * 5  # the classifier's flags are kept apart
        assert segmented.tolist() == [k < tiles for k in range(6)], rounds
        assert r.summary()["followed"] == tiles - 1
        # the mask holds the crack exactly in the segmented cells: nothing beyond, nothing missed there
        cells = np.zeros((H, W), bool)
        cells[:, : tiles * T] = True
        assert np.array_equal(r.mask & cells, crack_cells & cells)
        assert not (r.mask & ~r.region).any()


@pytest.mark.parametrize("overlap", [0.0, 0.25])
def test_a_followed_crack_is_the_baseline_s_bit_for_bit_and_costs_only_its_windows(overlap):
    image = _line_image()
    full_seg, seg = Pixels(), Pixels()
    full = segment_all_tiles(image, full_seg, tile=T, overlap=overlap)
    r = inspect_image(image, _first_tile_only, seg, tile=T, threshold=0.5, overlap=overlap, follow=50)
    assert np.array_equal(r.probability[r.region], full.probability[r.region])
    assert np.array_equal(r.mask, full.mask)  # the whole crack, as segmenting every window finds it
    assert seg.windows == r.windows_segmented < full_seg.windows  # each window ran once; tile 5's did not
    assert r.tile_rows()[3]["followed"] == 1 and r.tile_rows()[5]["followed"] == 0


def test_following_does_not_start_without_a_crack_or_in_the_baseline():
    image = np.zeros((1, H, W), np.float32)
    r = inspect_image(image, _first_tile_only, Pixels(), tile=T, threshold=0.5, follow=50)
    assert not r.followed.any() and r.flagged.sum() == 1
    full = inspect_image(_line_image(), None, Pixels(), tile=T, all_tiles=True, follow=50)
    assert not full.followed.any() and full.flagged.all()


def test_hysteresis_a_reached_tile_needs_the_follow_threshold():
    """The classifier scores the six tiles 0.9, 0.3, 0.25, 0.05, 0.3, 0.3: flagged at 0.5, followed at
    0.2, the crack is followed to tile 2 and stops at tile 3 although it runs on to tile 4."""
    probs = torch.tensor([0.9, 0.3, 0.25, 0.05, 0.3, 0.3])
    image = _line_image()
    for follow_threshold, expected in [(0.0, 5), (0.2, 3), (0.26, 2), (0.5, 1)]:
        r = inspect_image(
            image, lambda tiles: probs, Pixels(), tile=T, threshold=0.5, follow=50, follow_threshold=follow_threshold
        )
        assert (r.flagged | r.followed).tolist() == [k < expected for k in range(6)], follow_threshold
