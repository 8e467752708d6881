"""Camera-robust training crops (crackscope.data.camera_augment): geometry that moves the mask with
the image, photometric steps against their formulas, determinism from (seed, epoch, item), bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crackscope.data.camera_augment import CameraAugment, gaussian_blur, jpeg_roundtrip, luminance
from crackscope.data.surface import SurfaceSegmentationDataset
from crackscope.errors import InputError

NO_PHOTOMETRY = dict(
    brightness=0.0,
    contrast=(1.0, 1.0),
    gamma=(1.0, 1.0),
    gradient=0.0,
    channel_gain=0.0,
    saturation=(1.0, 1.0),
    p_grey=0.0,
    p_blur=0.0,
    p_noise=0.0,
    p_jpeg=0.0,
)


def _coordinates(h: int, w: int) -> torch.Tensor:
    """A (3, H, W) image whose channels are the row, the column and a constant: where a pixel came from."""
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    return torch.stack([rows / 1000.0, cols / 1000.0, torch.full((h, w), 0.5, dtype=torch.float64)])


def test_geometry_at_scale_one_moves_each_mask_pixel_with_its_image_pixel():
    rng = np.random.default_rng(0)
    h, w = 37, 53
    mask = torch.from_numpy((rng.random((1, h, w)) < 0.2).astype(np.float64))
    aug = CameraAugment(crop=24, scale=(1.0, 1.0), p_crack=0.5, **NO_PHOTOMETRY)
    for k in range(20):
        img, msk = aug(_coordinates(h, w), mask, np.random.default_rng(k))
        assert img.shape == (3, 24, 24) and msk.shape == (1, 24, 24)
        r = torch.round(img[0] * 1000).long()
        c = torch.round(img[1] * 1000).long()
        assert int(r.min()) >= 0 and int(r.max()) < h and int(c.min()) >= 0 and int(c.max()) < w
        # every output mask pixel is the input mask pixel its image pixel came from
        assert torch.equal(msk[0], mask[0][r, c])
        # the output is a rigid copy: neighbouring pixels came from neighbouring pixels
        steps = torch.cat([(r[:, 1:] - r[:, :-1]).abs().flatten(), (c[:, 1:] - c[:, :-1]).abs().flatten()])
        assert set(steps.unique().tolist()) <= {0, 1}


def test_a_photo_smaller_than_the_crop_is_reflected_not_refused():
    mask = torch.zeros(1, 9, 7, dtype=torch.float64)
    mask[0, 4, 3] = 1
    aug = CameraAugment(crop=32, scale=(1.0, 1.0), **NO_PHOTOMETRY)
    img, msk = aug(_coordinates(9, 7), mask, np.random.default_rng(1))
    r, c = torch.round(img[0] * 1000).long(), torch.round(img[1] * 1000).long()
    assert img.shape == (3, 32, 32) and int(r.max()) <= 8 and int(c.max()) <= 6
    assert torch.equal(msk[0], mask[0][r, c])


def test_crack_centred_crops_hold_the_crack_and_scale_changes_its_width():
    h, w = 200, 200
    mask = torch.zeros(1, h, w)
    mask[0, :, 100:104] = 1  # a vertical crack 4 px wide
    image = 1.0 - mask.expand(3, h, w).clone() * 0.8
    widths = {}
    for s in (0.5, 2.0):
        aug = CameraAugment(crop=64, scale=(s, s), p_crack=1.0, **NO_PHOTOMETRY)
        img, msk = aug(image, mask, np.random.default_rng(3))
        assert msk.sum() > 0  # p_crack = 1: the crop is centred on a crack pixel
        # crack pixels per image line, whatever the quarter turn
        widths[s] = float(msk.sum()) / 64
        assert set(torch.unique(msk).tolist()) <= {0.0, 1.0}
    # 4 px at half / twice the scale, +-1 px: a sample landing on the crack's edge counts as crack
    assert 2.0 <= widths[0.5] <= 3.0
    assert 7.0 <= widths[2.0] <= 9.0


def test_gaussian_blur_of_an_impulse_is_the_normalised_gaussian():
    sigma = 1.3
    image = torch.zeros(1, 21, 21, dtype=torch.float64)
    image[0, 10, 10] = 1.0
    out = gaussian_blur(image, sigma)
    y, x = np.mgrid[-10:11, -10:11]
    radius = int(np.ceil(3 * sigma))
    inside = (np.abs(y) <= radius) & (np.abs(x) <= radius)
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2)) * inside
    np.testing.assert_allclose(out[0].numpy(), g / g.sum(), atol=1e-12)


def _blur_by_hand(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """The reference gaussian_blur reproduces (crackscope's own blur before it was kornia's): radius
    max(1, ceil(3 sigma)), the Gaussian sampled at the integer offsets and normalised, the border
    reflected without repeating the edge pixel, rows then columns."""
    radius = max(1, int(np.ceil(3.0 * sigma_px)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (x / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    c = image.shape[0]
    out = torch.nn.functional.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    out = torch.nn.functional.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 17, 23), (3, 320, 320)])  # 320 x 320: kornia's large-image path
@pytest.mark.parametrize("sigma", [0.3, 0.31, 1.0, 1.2345, 1.5])  # radius 1, 1, 3, 4, 5
def test_gaussian_blur_equals_the_blur_written_out_border_included(shape, sigma):
    g = torch.Generator().manual_seed(len(shape) + int(sigma * 100))
    image = torch.rand(shape, generator=g, dtype=torch.float64)
    out = gaussian_blur(image, sigma)
    assert out.shape == image.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, _blur_by_hand(image, sigma), rtol=0, atol=1e-14)
    # float32, the training images' type: equal up to the rounding of the kernel weights (a few ulp)
    image32 = image.float()
    torch.testing.assert_close(gaussian_blur(image32, sigma), _blur_by_hand(image32, sigma), rtol=0, atol=1e-6)


def test_the_blurred_camera_crops_are_those_of_the_blur_written_out(monkeypatch):
    """The whole photometric step with blur always on (noise, JPEG off): the same crops, up to float
    rounding, as with the reference blur in its place -- the same draws, sigma and border."""
    import crackscope.data.camera_augment as camera_augment

    aug = CameraAugment(crop=48, p_blur=1.0, p_noise=0.0, p_jpeg=0.0)
    image = torch.rand(3, 60, 70, generator=torch.Generator().manual_seed(0))
    mask = (torch.rand(1, 60, 70, generator=torch.Generator().manual_seed(1)) > 0.9).float()
    ours = [aug(image, mask, np.random.default_rng(seed)) for seed in range(8)]
    monkeypatch.setattr(camera_augment, "gaussian_blur", _blur_by_hand)
    reference = [aug(image, mask, np.random.default_rng(seed)) for seed in range(8)]
    for (img, msk), (ref_img, ref_msk) in zip(ours, reference):
        assert torch.equal(msk, ref_msk)
        torch.testing.assert_close(img, ref_img, rtol=0, atol=1e-6)


def test_photometric_steps_follow_their_formulas():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(0.2, 0.8, (3, 16, 16)))
    identity = CameraAugment(crop=16, **NO_PHOTOMETRY)
    torch.testing.assert_close(identity.photometric(image, np.random.default_rng(0)), image)
    gamma = CameraAugment(crop=16, **{**NO_PHOTOMETRY, "gamma": (2.0, 2.0)})
    torch.testing.assert_close(gamma.photometric(image, np.random.default_rng(0)), image**2)
    grey = CameraAugment(crop=16, **{**NO_PHOTOMETRY, "p_grey": 1.0})
    out = grey.photometric(image, np.random.default_rng(0))
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype).view(3, 1, 1)
    for ch in range(3):
        torch.testing.assert_close(out[ch], (image * weights).sum(0))
    torch.testing.assert_close(luminance(image), (image * weights).sum(0, keepdim=True))
    flat = CameraAugment(crop=16, **{**NO_PHOTOMETRY, "contrast": (0.0, 0.0)})
    torch.testing.assert_close(flat.photometric(image, np.random.default_rng(0)), image.mean().expand_as(image))
    full = CameraAugment(crop=16)
    for k in range(10):
        out = full.photometric(image.float(), np.random.default_rng(k))
        assert out.shape == image.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_jpeg_keeps_a_uniform_image_and_distorts_texture_more_at_low_quality():
    flat = torch.full((3, 16, 16), 0.4)
    assert float((jpeg_roundtrip(flat, 30) - flat).abs().max()) <= 1.5 / 255
    texture = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (1, 32, 32)).astype(np.float32))
    err_high = float((jpeg_roundtrip(texture, 95) - texture).abs().mean())
    err_low = float((jpeg_roundtrip(texture, 20) - texture).abs().mean())
    assert err_low > 2 * err_high


def test_dataset_draws_from_seed_epoch_and_item(tmp_path):
    rng = np.random.default_rng(0)
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for k in range(3):
        Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).save(tmp_path / "images" / f"p{k}.png")
        Image.fromarray(((rng.random((40, 50)) < 0.1) * 255).astype(np.uint8)).save(tmp_path / "masks" / f"p{k}.png")
    aug = CameraAugment(crop=32)

    def item(epoch, i, seed=0):
        ds = SurfaceSegmentationDataset(tmp_path, "folder", augment=aug, in_channels=3, seed=seed)
        ds.set_epoch(epoch)
        return ds[i]

    a, b = item(2, 1), item(2, 1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (3, 32, 32)
    assert not torch.equal(item(3, 1)[0], a[0])
    assert not torch.equal(item(2, 1, seed=1)[0], a[0])


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"crop": 4}, "crop=4"),
        ({"scale": (2.0, 1.0)}, "scale="),
        ({"p_blur": 1.5}, "p_blur=1.5"),
        ({"jpeg_quality": (10, 120)}, "jpeg_quality="),
        ({"contrast": 3}, "contrast=3"),
        ({"p_sound": -0.1}, "p_sound=-0.1"),
        ({"p_hard_negative": 2}, "p_hard_negative=2"),
        ({"p_synthetic_crack": -0.5}, "p_synthetic_crack=-0.5"),
        ({"sound_clearance_px": -1}, "sound_clearance_px=-1"),
    ],
)
def test_bad_options_are_one_line_naming_the_value(kwargs, word):
    with pytest.raises(InputError, match=word):
        CameraAugment(**kwargs)


def test_sound_crops_come_from_crack_free_surface_only():
    """p_sound = 1: a 200 x 160 photo with a labelled crack down column 10. Every pixel of every
    crop comes from more than 16 px from the crack (column >= 27), and the mask is empty. At scale
    2 a 24-px crop covers 12 photo pixels: one square (k = 1) fits and is copied rigidly."""
    h, w = 160, 200
    mask = torch.zeros(1, h, w, dtype=torch.float64)
    mask[0, :, 10] = 1
    aug = CameraAugment(crop=24, scale=(1.0, 1.0), p_crack=1.0, p_sound=1.0, **NO_PHOTOMETRY)
    for k in range(10):
        img, msk = aug(_coordinates(h, w), mask, np.random.default_rng(k))
        c = torch.round(img[1] * 1000).long()
        assert img.shape == (3, 24, 24) and not msk.any() and int(c.min()) >= 27
    # a photo that is crack everywhere has no crack-free square: the ordinary crop is cut
    full = torch.ones(1, 40, 40, dtype=torch.float64)
    _, msk = aug(_coordinates(40, 40), full, np.random.default_rng(0))
    assert msk.all()


def test_a_small_photo_gives_a_mosaic_of_crack_free_squares():
    """The crop needs 64 photo pixels, but the crack-free part of a 90 x 90 photo with a crack down
    column 5 is 68 columns wide (22 ... 89) and 90 rows: a 64 square fits. With a crack down column
    45 as well, the crack-free columns are 22 ... 28 and 62 ... 89: the wider strip is 28 columns, so
    only 16-px squares (k = 4) fit, and the crop is a 4 x 4 mosaic of them."""
    mask = torch.zeros(1, 90, 90, dtype=torch.float64)
    mask[0, :, 5] = 1
    aug = CameraAugment(crop=64, scale=(1.0, 1.0), p_sound=1.0, **NO_PHOTOMETRY)
    img, msk = aug(_coordinates(90, 90), mask, np.random.default_rng(0))
    c = torch.round(img[1] * 1000).long()
    assert not msk.any() and int(c.min()) >= 22
    mask[0, :, 45] = 1
    img, msk = aug(_coordinates(90, 90), mask, np.random.default_rng(0))
    c = torch.round(img[1] * 1000).long()
    assert not msk.any() and bool(((c >= 62) | ((c >= 22) & (c <= 28))).all())


def test_hard_negatives_change_the_image_and_never_the_mask():
    rng = np.random.default_rng(0)
    mask = torch.from_numpy((rng.random((1, 80, 80)) < 0.05).astype(np.float64))
    image = torch.full((3, 80, 80), 0.5, dtype=torch.float64)
    plain = CameraAugment(crop=48, scale=(1.0, 1.0), **NO_PHOTOMETRY)
    hard = CameraAugment(crop=48, scale=(1.0, 1.0), p_hard_negative=1.0, **NO_PHOTOMETRY)
    for k in range(6):
        a_img, a_msk = plain(image, mask, np.random.default_rng(k))
        b_img, b_msk = hard(image, mask, np.random.default_rng(k))
        assert torch.equal(a_msk, b_msk)  # the geometry is drawn first: the same crop
        assert (b_img - a_img).abs().max() > 0.05  # something was drawn on the flat grey surface


def test_synthetic_hairlines_add_a_dark_thin_crack_to_image_and_mask():
    """p_synthetic_crack = 1 on a flat grey photo without cracks: the crop's geometry is the one
    drawn without the option (drawn first), the mask gains a thin crack (its pixels about as many as
    its length times a width of 1-2.5 px), and the image is darker there and nowhere brighter."""
    mask = torch.zeros(1, 400, 400, dtype=torch.float64)
    image = torch.full((3, 400, 400), 0.5, dtype=torch.float64)
    plain = CameraAugment(crop=320, scale=(1.0, 1.0), **NO_PHOTOMETRY)
    drawn = CameraAugment(crop=320, scale=(1.0, 1.0), p_synthetic_crack=1.0, **NO_PHOTOMETRY)
    for k in range(4):
        a_img, a_msk = plain(image, mask, np.random.default_rng(k))
        b_img, b_msk = drawn(image, mask, np.random.default_rng(k))
        assert not a_msk.any() and torch.equal(a_img, image[:, :320, :320])
        crack = b_msk[0].bool()
        assert 20 <= int(crack.sum()) <= 300 * 2.5 + 10
        darker = a_img - b_img
        assert darker.min() >= -1e-9
        assert float(darker[:, crack].mean()) > 0.5 * 0.35 * 0.5  # at least half the shallowest depth
        far = ~torch.from_numpy(np.asarray(crack)).bool()
        assert float(darker[:, far].mean()) < 0.01  # only the crack's antialiased rim outside it
