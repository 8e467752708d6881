"""Camera-robust training crops for crack segmentation: what changes between one inspection camera
and another, drawn at random for every training image.

A segmenter trained on the photos of one camera learns that camera's crack width in pixels, its
exposure, its colour and its compression. :class:`CameraAugment` cuts a fixed-size training crop
out of an image/mask pair and varies, in this order:

* **scale** -- the crop covers ``crop / s`` pixels of the photo and is resampled to ``crop`` pixels,
  ``s`` log-uniform in ``scale`` (cracks 0.5x to 1.6x as wide as in the photo by default). The
  crop's centre is a crack pixel with probability ``p_crack`` (cracks are a few % of the pixels),
  anywhere otherwise; a photo smaller than the window is reflected at its border;
* **sound surface** (``p_sound``, default 0) -- instead, a crop with no crack at all: a k x k
  mosaic (k = 1, 2 or 4, the fewest the photo allows) of squares of the photo in which every pixel
  is more than ``sound_clearance_px`` from every labelled crack pixel, its mask empty; where the
  photo has no such square the ordinary crop is cut. Seams between the squares are straight edges
  that are not cracks, as joints and plank edges are;
* **orientation** -- one of the eight flips / quarter turns (exact: no resampling);
* **hard negatives** (``p_hard_negative``, default 0) -- a joint, plank edge, shadow, stain, tyre
  mark, paint line, line of text or tape measure drawn into the crop
  (:mod:`crackscope.data.hard_negatives`; ``hard_negative_kinds`` restricts the kinds, default all),
  mask unchanged;
* **synthetic hairlines** (``p_synthetic_crack``, default 0) -- a tortuous, tapering crack 1-2.5 px
  wide drawn into the crop and added to the mask
  (:func:`crackscope.data.synthetic_cracks.random_hairline`): the hairlines that the labelled
  close-ups, whose cracks are mostly several pixels wide, hold few of;
* **illumination** -- brightness shift, contrast about the mean, gamma, and a linear illumination
  gradient across the crop (shadow, vignetting);
* **colour** -- per-channel gain (white balance) and saturation, or grey with probability ``p_grey``;
* **blur** -- Gaussian, standard deviation uniform in ``blur_sigma_px`` (focus, motion);
* **noise** -- additive Gaussian, standard deviation uniform in ``noise_sigma`` (sensor noise);
* **JPEG** -- re-encoded with quality uniform in ``jpeg_quality`` (Pillow).

The geometric steps move the mask with the image (resampled bilinearly and cut at 0.5, so it stays
0/1); the photometric steps touch the image only. Every draw comes from ``rng``, a
:class:`numpy.random.Generator` the dataset seeds from (seed, epoch, item), so a resumed run draws
again exactly what it would have drawn. With ``p_sound``, ``p_hard_negative`` and ``p_synthetic_crack`` at
0 nothing is drawn for them, so a configuration without them draws what it drew before they existed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from crackscope.errors import InputError


def _pair(value, name: str, low: float, high: float | None = None) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name}={value!r} must be a pair [min, max]") from None
    if not (low <= a <= b) or (high is not None and b > high):
        upper = f" and max <= {high}" if high is not None else ""
        raise InputError(f"{name}={[a, b]} must have {low} <= min <= max{upper}")
    return a, b


def gaussian_blur(image: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """(C, H, W) blurred by a separable Gaussian of standard deviation ``sigma_px`` pixels: kornia's
    ``gaussian_blur2d`` with a kernel of radius r = max(1, ceil(3 sigma)) (2r + 1 taps, sampled at the
    integer offsets and normalised to sum 1) and the border reflected without repeating the edge pixel
    (torch's "reflect"). H and W must exceed r."""
    from kornia.filters import gaussian_blur2d

    radius = max(1, int(math.ceil(3.0 * sigma_px)))
    sigma = float(sigma_px)
    return gaussian_blur2d(image[None], 2 * radius + 1, (sigma, sigma), border_type="reflect")[0]


def jpeg_roundtrip(image: torch.Tensor, quality: int) -> torch.Tensor:
    """(C, H, W) in [0, 1] encoded as JPEG at ``quality`` (1-95) and decoded again."""
    from PIL import Image

    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        decoded = np.asarray(im.convert("L" if array.shape[2] == 1 else "RGB"), dtype=np.float32) / 255.0
    decoded = decoded[None] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(decoded))


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(1, H, W) luminance (ITU-R BT.601 weights, as Pillow's 'L') of a (3, H, W) image; grey unchanged."""
    if image.shape[0] == 1:
        return image
    w = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype).view(3, 1, 1)
    return (image * w).sum(0, keepdim=True)


class CameraAugment:
    """A random, fixed-size training crop that varies scale, orientation, illumination, colour,
    blur, noise and JPEG compression (module docstring). Call with ``(image (C, H, W) in [0, 1],
    mask (1, H, W) in {0, 1}, rng)``; returns ``(image (C, crop, crop), mask (1, crop, crop))``.

    Each photometric step happens with its probability ``p_*``; all random numbers are drawn in a
    fixed order whether or not a step happens, so one step's probability does not change another's draws.
    """

    seeded = True  # the dataset passes a Generator seeded from (seed, epoch, item)

    def __init__(
        self,
        crop: int = 320,
        scale: Sequence[float] = (0.5, 1.6),
        p_crack: float = 0.5,
        brightness: float = 0.25,
        contrast: Sequence[float] = (0.6, 1.5),
        gamma: Sequence[float] = (0.7, 1.5),
        gradient: float = 0.3,
        channel_gain: float = 0.15,
        saturation: Sequence[float] = (0.0, 1.4),
        p_grey: float = 0.1,
        p_blur: float = 0.3,
        blur_sigma_px: Sequence[float] = (0.3, 1.5),
        p_noise: float = 0.3,
        noise_sigma: Sequence[float] = (0.005, 0.04),
        p_jpeg: float = 0.3,
        jpeg_quality: Sequence[float] = (30, 95),
        p_sound: float = 0.0,
        sound_clearance_px: float = 16.0,
        p_hard_negative: float = 0.0,
        hard_negative_kinds: Sequence[str] | None = None,
        p_synthetic_crack: float = 0.0,
    ):
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 8:
            raise InputError(f"crop={crop!r} must be an integer >= 8 (pixels)")
        probabilities = {
            "p_crack": p_crack,
            "p_grey": p_grey,
            "p_blur": p_blur,
            "p_noise": p_noise,
            "p_jpeg": p_jpeg,
            "p_sound": p_sound,
            "p_hard_negative": p_hard_negative,
            "p_synthetic_crack": p_synthetic_crack,
        }
        for name, p in probabilities.items():
            if not 0.0 <= float(p) <= 1.0:
                raise InputError(f"{name}={p!r} must be a probability in [0, 1]")
        self.params = dict(
            crop=crop,
            scale=_pair(scale, "scale", 1e-3),
            p_crack=float(p_crack),
            brightness=float(brightness),
            contrast=_pair(contrast, "contrast", 0.0),
            gamma=_pair(gamma, "gamma", 1e-3),
            gradient=float(gradient),
            channel_gain=float(channel_gain),
            saturation=_pair(saturation, "saturation", 0.0),
            p_grey=float(p_grey),
            p_blur=float(p_blur),
            blur_sigma_px=_pair(blur_sigma_px, "blur_sigma_px", 1e-3),
            p_noise=float(p_noise),
            noise_sigma=_pair(noise_sigma, "noise_sigma", 0.0),
            p_jpeg=float(p_jpeg),
            jpeg_quality=_pair(jpeg_quality, "jpeg_quality", 1, 95),
            p_sound=float(p_sound),
            sound_clearance_px=float(sound_clearance_px),
            p_hard_negative=float(p_hard_negative),
            p_synthetic_crack=float(p_synthetic_crack),
        )
        from crackscope.data.hard_negatives import KINDS

        kinds = tuple(KINDS if hard_negative_kinds is None else hard_negative_kinds)
        if isinstance(hard_negative_kinds, str) or not kinds or any(k not in KINDS for k in kinds):
            raise InputError(f"hard_negative_kinds={hard_negative_kinds!r} must list kinds of {', '.join(KINDS)}")
        self.params["hard_negative_kinds"] = kinds
        if not float(sound_clearance_px) >= 0:
            raise InputError(f"sound_clearance_px={sound_clearance_px!r} must be a distance >= 0 (pixels)")

    # ---- geometry ----------------------------------------------------------------------------
    def window(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, float]:
        """(top, left, side, scale): the square of the photo, in its pixels (may reach past the
        border), that becomes the crop. Centred on a crack pixel with probability ``p_crack``."""
        p = self.params
        lo, hi = p["scale"]
        s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        side = max(2, int(round(p["crop"] / s)))
        h, w = mask.shape[-2:]
        on_crack = rng.random() < p["p_crack"]
        u, v = rng.random(), rng.random()
        ys, xs = np.nonzero(mask[0] > 0.5) if on_crack else ((), ())
        if len(ys):
            k = int(u * len(ys)) % len(ys)
            top, left = int(ys[k]) - side // 2, int(xs[k]) - side // 2
            top = min(max(top, 0), max(h - side, 0))  # inside the photo where the photo is large enough
            left = min(max(left, 0), max(w - side, 0))
        else:
            top, left = int(u * (max(h - side, 0) + 1)), int(v * (max(w - side, 0) + 1))
        return top, left, side, s

    @staticmethod
    def _cut(array: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
        """The ``side`` x ``side`` window at (top, left), reflecting (repeatedly) past the border."""
        h, w = array.shape[-2:]
        rows = np.arange(top, top + side)
        cols = np.arange(left, left + side)
        # reflection without repeating the edge pixel: period 2(n - 1)
        rows = np.abs((rows + (h - 1)) % (2 * max(h - 1, 1)) - (h - 1)) if h > 1 else np.zeros_like(rows)
        cols = np.abs((cols + (w - 1)) % (2 * max(w - 1, 1)) - (w - 1)) if w > 1 else np.zeros_like(cols)
        return array[:, torch.from_numpy(rows)][:, :, torch.from_numpy(cols)]

    def sound_window(
        self, image: torch.Tensor, mask: torch.Tensor, side: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A ``side`` x ``side`` crack-free mosaic of the photo (module docstring) and its empty
        mask, or ``None`` when the photo has no crack-free square of side // 4."""
        from crackscope.data.survey_mosaics import sound_tile_origins
        from crackscope.metrics import crack_free_pixels

        truth = mask[0].numpy() > 0.5
        sound = crack_free_pixels(truth, self.params["sound_clearance_px"])  # once for every k
        for k in (1, 2, 4):
            part = side // k
            origins = sound_tile_origins(truth, part, 0, sound=sound) if part >= 2 else []
            if origins:
                picks = rng.integers(len(origins), size=k * k)
                rows = [
                    torch.cat(
                        [
                            image[:, y : y + part, x : x + part]
                            for y, x in (origins[int(j)] for j in picks[r * k : (r + 1) * k])
                        ],
                        dim=2,
                    )
                    for r in range(k)
                ]
                img = torch.cat(rows, dim=1)
                return img, torch.zeros((mask.shape[0], *img.shape[1:]), dtype=mask.dtype)
        return None

    def geometry(
        self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        crop = self.params["crop"]
        top, left, side, _ = self.window(mask.numpy(), rng)
        sound = self.params["p_sound"] > 0 and rng.random() < self.params["p_sound"]
        mosaic = self.sound_window(image, mask, side, rng) if sound else None
        if mosaic is not None:
            img, msk = mosaic
            side = img.shape[-1]
        else:
            img, msk = self._cut(image, top, left, side), self._cut(mask, top, left, side)
        if side != crop:
            img = F.interpolate(img[None], size=(crop, crop), mode="bilinear", align_corners=False, antialias=True)[0]
            msk = F.interpolate(msk[None], size=(crop, crop), mode="bilinear", align_corners=False, antialias=True)[0]
            msk = (msk >= 0.5).to(mask.dtype)
        turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        img, msk = torch.rot90(img, turns, (1, 2)), torch.rot90(msk, turns, (1, 2))
        if flip:
            img, msk = img.flip(2), msk.flip(2)
        return img.contiguous(), msk.contiguous()

    # ---- appearance --------------------------------------------------------------------------
    def photometric(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        p = self.params
        c, h, w = image.shape
        shift = rng.uniform(-p["brightness"], p["brightness"])
        contrast = rng.uniform(*p["contrast"])
        gamma = float(np.exp(rng.uniform(np.log(p["gamma"][0]), np.log(p["gamma"][1]))))
        slope, angle = rng.uniform(-p["gradient"], p["gradient"]), rng.uniform(0, 2 * np.pi)
        gains = rng.uniform(1 - p["channel_gain"], 1 + p["channel_gain"], size=3)
        saturation, grey = rng.uniform(*p["saturation"]), rng.random() < p["p_grey"]
        blur, sigma = rng.random() < p["p_blur"], rng.uniform(*p["blur_sigma_px"])
        noisy, noise_sigma = rng.random() < p["p_noise"], rng.uniform(*p["noise_sigma"])
        jpeg, quality = rng.random() < p["p_jpeg"], int(round(rng.uniform(*p["jpeg_quality"])))
        noise_seed = int(rng.integers(2**31))

        x = image.clamp(0.0, 1.0) ** gamma
        mean = x.mean()
        x = (x - mean) * contrast + mean + shift
        yy, xx = torch.meshgrid(torch.linspace(-0.5, 0.5, h), torch.linspace(-0.5, 0.5, w), indexing="ij")
        x = x * (1.0 + slope * (math.cos(angle) * xx + math.sin(angle) * yy))[None]
        if c == 3:
            x = x * torch.tensor(gains, dtype=x.dtype).view(3, 1, 1)
            grey_x = luminance(x)
            x = grey_x.expand(3, h, w) if grey else grey_x + saturation * (x - grey_x)
        x = x.clamp(0.0, 1.0)
        if blur:
            x = gaussian_blur(x, sigma)
        if noisy:
            g = torch.Generator().manual_seed(noise_seed)
            x = (x + noise_sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0.0, 1.0)
        if jpeg:
            x = jpeg_roundtrip(x, quality)
        return x.to(image.dtype).contiguous()

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        img, msk = self.geometry(image, mask, rng)
        if self.params["p_hard_negative"] > 0 and rng.random() < self.params["p_hard_negative"]:
            from crackscope.data.hard_negatives import draw_hard_negative

            img = draw_hard_negative(img, rng, kinds=self.params["hard_negative_kinds"])[0]
        if self.params["p_synthetic_crack"] > 0 and rng.random() < self.params["p_synthetic_crack"]:
            from crackscope.data.synthetic_cracks import draw_hairline, random_hairline

            img, drawn = draw_hairline(img, random_hairline(tuple(img.shape[-2:]), rng))
            msk = torch.maximum(msk, torch.from_numpy(drawn).to(msk.dtype)[None].expand_as(msk))
        return self.photometric(img, rng), msk

    def __repr__(self) -> str:
        return "CameraAugment(" + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ")"
