"""Surface-defect segmentation data: SD-saliency-900, DeepCrack, Crack500 and a generic image/mask folder format.

These on-disk layouts are read (``format=``):

* ``"sd-saliency-900"`` -- the original layout of SD-saliency-900 (Song et al. 2020):
  ``<root>/Source Images/<P>_<n>.bmp`` and ``<root>/Ground truth/<P>_<n>.png`` (the folder names
  contain spaces), 200x200 grey images and 0/255 masks; the defect class is the file prefix
  ``In`` (inclusion), ``Pa`` (patches) or ``Sc`` (scratches).
* ``"folder"`` -- a user's own data: ``<root>/images/<stem>.<any Pillow format>`` and
  ``<root>/masks/<stem>.<any Pillow format>`` with matching stems. Images may be grey or RGB and of
  any size; masks are single-channel (an RGB mask with equal channels is accepted) and are
  binarised with ``value >= 128`` so anti-aliased edges do not leak into the defect class.
* ``"deepcrack"`` -- DeepCrack (Liu et al. 2019): ``<root>/train_img/<id>.jpg`` (544 x 384 RGB) and
  ``<root>/train_lab/<id>.png`` (RGB masks with equal channels, anti-aliased: crack = value >= 128,
  the same threshold as the folder format). Images named ``<id>-<k>`` are crops of photo ``<id>``;
  ``groups`` holds that source id, so :func:`~crackscope.data.splits.group_split` keeps the crops of one photo together.
* ``"crack500"`` -- Crack500 (Yang et al. 2019), its 640 x 360 version: ``<root>/train_img/<stem>.jpg``
  (640 x 360 RGB, ``<stem>`` = ``<date>_<time>`` such as ``20160222_081111``, or ``IMG_<n>``) and
  ``<root>/train_lab/<stem>_mask.png`` (note the ``_mask`` suffix; RGB masks with equal channels,
  anti-aliased: crack = value >= 128). The photos were taken in bursts: shots seconds apart are
  often the same crack again (``20160222_081111`` and ``..._081113``), so ``groups`` holds the
  burst (:func:`crack500_bursts`: the first stem of a run of photos of one day each at most
  :data:`CRACK500_BURST_GAP_S` seconds after the previous one) and a group split keeps a re-shot
  crack out of the other parts.
* ``"crackpatches"`` -- one surface of CrackPatches (GAPs384, AigleRN-TRIMM, ShadowCrack: patches
  third parties cut from larger photos, keeping only patches that hold cracks):
  ``<root>/{train,valid}/<stem>.jpg`` with **JPEG** masks ``<root>/{train,valid}_lab/<stem>.jpg``
  (grey with compression noise: crack = value >= 128). Both parts are read as one set of pairs (their
  stems are distinct); patches named ``<photo>-<k>`` come from photo ``<photo>``, which ``groups``
  holds, as for DeepCrack.

Size policy (the same for every layout):

* ``size=None`` (default): **pad** each item on the bottom and right, by reflection, up to the next
  multiple of ``pad_multiple`` (32 by default: five 2x poolings of a U-Net divide evenly). Nothing
  is resampled, so the original pixels are untouched and :func:`restore` simply crops.
* ``size=S`` or ``size=(H, W)``: **resize** to a fixed size (bilinear for the image, nearest for the
  mask), which lets items of different sizes share a batch; :func:`restore` resizes back.

Items padded to different sizes cannot be stacked into one batch: use ``size=`` or batch size 1
for folders of mixed sizes. :meth:`SurfaceSegmentationDataset.meta` gives the record that
:func:`restore` needs to bring a prediction back to the original image size.

Files are opened lazily in ``__getitem__`` (only image headers are read at construction, to learn
the sizes and catch missing or mismatched masks early); the dataset holds no open handles, so it is
safe with ``DataLoader(num_workers > 0)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from crackscope.data.formats import SURFACE_FORMATS
from crackscope.data.images import (
    image_extensions,
    image_size,
    load_image,
    load_mask,
    natural_key,
    normalize_size,
)
from crackscope.errors import InputError, dataset_index

FORMATS = SURFACE_FORMATS
SD_SALIENCY_CLASSES = {"In": "inclusion", "Pa": "patches", "Sc": "scratches"}
SD_IMAGE_DIR, SD_MASK_DIR = "Source Images", "Ground truth"
DEEPCRACK_IMAGE_DIR, DEEPCRACK_MASK_DIR = "train_img", "train_lab"
_PAIR_DIRS = {
    "sd-saliency-900": (SD_IMAGE_DIR, SD_MASK_DIR),
    "folder": ("images", "masks"),
    "deepcrack": (DEEPCRACK_IMAGE_DIR, DEEPCRACK_MASK_DIR),
    "crack500": (DEEPCRACK_IMAGE_DIR, DEEPCRACK_MASK_DIR),  # the same folder names as DeepCrack
}
# layouts whose pairs lie in several (image folder, mask folder)s, read as one set
_PAIR_DIR_SETS = {"crackpatches": (("train", "train_lab"), ("valid", "valid_lab"))}
# a mask's stem is its image's stem + this suffix
_MASK_SUFFIX = {"crack500": "_mask"}
CRACK500_BURST_GAP_S = 10.0
DEFAULT_PAD_MULTIPLE = 32


def fit_meta(
    original_size: tuple[int, int], size: int | Sequence[int] | None = None, pad_multiple: int = DEFAULT_PAD_MULTIPLE
) -> dict[str, Any]:
    """The record describing how an image of ``original_size`` (H, W) is brought to model size."""
    h, w = int(original_size[0]), int(original_size[1])
    target = normalize_size(size)
    if target is not None:
        return {"original_size": (h, w), "policy": "resize", "size": target}
    m = max(1, int(pad_multiple or 1))
    ph, pw = (-h) % m, (-w) % m
    return {"original_size": (h, w), "policy": "pad", "size": (h + ph, w + pw), "padding": (0, ph, 0, pw)}


def apply_fit(array: np.ndarray, meta: dict[str, Any], is_mask: bool = False) -> np.ndarray:
    """Pad (reflection, bottom/right) or resize a (C, H, W) array as ``meta`` says."""
    if meta["policy"] == "pad":
        _, pb, _, pr = meta["padding"]
        if pb or pr:
            array = np.pad(array, ((0, 0), (0, pb), (0, pr)), mode="reflect" if min(array.shape[1:]) > 1 else "edge")
        return array
    t = torch.from_numpy(np.ascontiguousarray(array))[None]
    if is_mask:
        out = F.interpolate(t, size=meta["size"], mode="nearest")
    else:
        out = F.interpolate(t, size=meta["size"], mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return out[0].numpy()


def prepare_image(
    image: np.ndarray, size: int | Sequence[int] | None = None, pad_multiple: int = DEFAULT_PAD_MULTIPLE
) -> tuple[torch.Tensor, dict[str, Any]]:
    """A (C, H, W) float image brought to model size, with the ``meta`` that :func:`restore` inverts."""
    meta = fit_meta(image.shape[-2:], size, pad_multiple)
    return torch.from_numpy(np.ascontiguousarray(apply_fit(image, meta), dtype=np.float32)), meta


def restore(pred, meta: dict[str, Any], mode: str = "bilinear"):
    """Bring a prediction (..., H, W) -- tensor or numpy -- back to the original image size.

    For the pad policy the padding is cropped off (exact inverse). For the resize policy the
    prediction is resized back: ``mode="bilinear"`` for logits/probabilities, ``"nearest"`` for
    hard masks (integer or bool predictions always use nearest).
    """
    is_numpy = isinstance(pred, np.ndarray)
    t = torch.from_numpy(pred) if is_numpy else pred
    h, w = meta["original_size"]
    if meta["policy"] == "pad":
        out = t[..., :h, :w]
    elif meta["policy"] == "resize":
        lead = t.shape[:-2]
        dtype = t.dtype
        x = t.reshape(1, -1, *t.shape[-2:])
        if dtype.is_floating_point and mode != "nearest":
            x = F.interpolate(x, size=(h, w), mode=mode, align_corners=False)
        else:
            x = F.interpolate(x.float(), size=(h, w), mode="nearest").to(dtype)
        out = x.reshape(*lead, h, w)
    else:
        raise InputError(f"unknown size policy {meta.get('policy')!r} in meta")
    return out.numpy() if is_numpy else out


# ---- augmentation ------------------------------------------------------------------------------
class JointAugment:
    """Random rotation, flips and brightness/contrast (and optionally colour) jitter applied to an
    image and its mask together (kornia). Geometric transforms are identical for both, the mask is
    resampled nearest so it stays binary, and photometric jitter touches the image only. Rotation
    fills the corners by reflection so no artificial black borders appear.
    """

    def __init__(
        self,
        rotation_deg: float = 20.0,
        hflip: float = 0.5,
        vflip: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.0,
        hue: float = 0.0,
        p_rotate: float = 0.5,
        p_jitter: float = 0.5,
    ):
        self.params = dict(
            rotation_deg=rotation_deg,
            hflip=hflip,
            vflip=vflip,
            brightness=brightness,
            contrast=contrast,
            saturation=saturation,
            hue=hue,
            p_rotate=p_rotate,
            p_jitter=p_jitter,
        )
        self._pipeline = None

    def _build(self):
        import kornia.augmentation as K

        p = self.params
        ops = []
        if p["hflip"] > 0:
            ops.append(K.RandomHorizontalFlip(p=p["hflip"]))
        if p["vflip"] > 0:
            ops.append(K.RandomVerticalFlip(p=p["vflip"]))
        if p["rotation_deg"] > 0 and p["p_rotate"] > 0:
            ops.append(K.RandomAffine(degrees=p["rotation_deg"], padding_mode="reflection", p=p["p_rotate"]))
        if any(p[k] > 0 for k in ("brightness", "contrast", "saturation", "hue")) and p["p_jitter"] > 0:
            ops.append(K.ColorJiggle(p["brightness"], p["contrast"], p["saturation"], p["hue"], p=p["p_jitter"]))
        return K.AugmentationSequential(*ops, data_keys=["input", "mask"]) if ops else None

    def __getstate__(self) -> dict:
        return {"params": self.params, "_pipeline": None}

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` (C, H, W) and ``mask`` (1, H, W) -> the same, transformed jointly."""
        if self._pipeline is None:
            self._pipeline = self._build()
            if self._pipeline is None:
                self._pipeline = False
        if self._pipeline is False:
            return image, mask
        img, msk = self._pipeline(image[None], mask[None])
        return img[0].clamp(0.0, 1.0), (msk[0] >= 0.5).to(mask.dtype)

    def __repr__(self) -> str:
        return "JointAugment(" + ", ".join(f"{k}={v}" for k, v in self.params.items()) + ")"


# ---- splits ------------------------------------------------------------------------------------
def deepcrack_source(stem: str) -> str:
    """The photo a DeepCrack image comes from: ``"11116-3"`` -> ``"11116"`` (crop 3 of photo 11116)."""
    return stem.split("-", 1)[0]


def crack500_bursts(stems: Sequence[str], max_gap_s: float = CRACK500_BURST_GAP_S) -> dict[str, str]:
    """The burst of each Crack500 photo: ``{stem: first stem of its burst}``. Stems
    ``<YYYYMMDD>_<HHMMSS>`` are ordered by time, and a photo taken on the same day at most
    ``max_gap_s`` seconds after the previous one joins its burst (``20160222_081111`` and
    ``20160222_081113`` photograph the same crack). Any other stem (``IMG_2917``) is its own burst."""
    from datetime import datetime

    timed, out = [], {}
    for s in stems:
        try:
            timed.append((datetime.strptime(s, "%Y%m%d_%H%M%S"), s))
        except ValueError:
            out[s] = s
    first, previous = None, None
    for t, s in sorted(timed):
        if previous is None or t.date() != previous.date() or (t - previous).total_seconds() > max_gap_s:
            first = s
        out[s], previous = first, t
    return out


# ---- the dataset -------------------------------------------------------------------------------
def _list_images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"folder not found: {folder}")
    exts = image_extensions()
    found: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in exts:
            continue
        if p.stem in found:
            raise InputError(f"two files share the stem {p.stem!r}: {found[p.stem]} and {p}")
        found[p.stem] = p
    return found


class SurfaceSegmentationDataset(Dataset):
    """Image/mask pairs of a surface-defect dataset, read lazily; items ``(image, mask)``.

    * ``image``: float32 (C, H, W) in [0, 1], C = ``in_channels`` (1 grey, 3 RGB).
    * ``mask``: float32 (1, H, W) in {0, 1}.

    Parameters
    ----------
    root: the dataset folder (see the module docstring for the layouts).
    format: ``"sd-saliency-900"``, ``"folder"``, ``"deepcrack"`` or ``"crack500"``.
    indices: positions in the sorted list of pairs to keep (order kept); ``None`` = all.
    size: ``None`` pads to a multiple of ``pad_multiple``; an int or (H, W) resizes (module docstring).
    augment: ``None``/``False``, ``True`` (a default :class:`JointAugment`), or a callable
        ``(image, mask) -> (image, mask)`` on tensors, applied after the size policy. A callable
        with ``seeded = True`` (:class:`~crackscope.data.camera_augment.CameraAugment`) is called
        as ``(image, mask, rng)`` on the image as read, before any size policy (it cuts its own
        fixed-size crop), with ``rng`` seeded from (``seed``, epoch, item): :meth:`set_epoch`.
    in_channels: 1 or 3.
    seed: the seed of a seeded augmentation.
    select: image stems to keep, in that order (instead of ``indices``); a stem the dataset lacks is
        one :class:`InputError` naming it. Only the selected pairs' headers are read.

    Attributes: ``stems`` (the image stems), ``classes`` (defect class name per item, ``None`` for
    the folder and crack formats), ``groups`` (the source photo per item for DeepCrack, the burst
    for Crack500, else the stem: what :func:`~crackscope.data.splits.group_split` keeps together),
    ``image_paths``, ``mask_paths``, ``original_sizes`` ((H, W) per item).
    """

    def __init__(
        self,
        root: str | Path,
        format: str = "sd-saliency-900",
        indices: Iterable[int] | None = None,
        size: int | Sequence[int] | None = None,
        augment: bool | Callable | None = None,
        in_channels: int = 1,
        pad_multiple: int = DEFAULT_PAD_MULTIPLE,
        seed: int = 0,
        select: Sequence[str] | None = None,
    ):
        if format not in FORMATS:
            raise InputError(f"format={format!r} is not one of {', '.join(FORMATS)}")
        if in_channels not in (1, 3):
            raise InputError(f"in_channels={in_channels!r} must be 1 or 3")
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"dataset folder not found: {self.root}")
        self.format = format
        self.in_channels = int(in_channels)
        self.size = normalize_size(size)
        self.pad_multiple = int(pad_multiple)
        if augment is True:
            augment = JointAugment(saturation=0.2 if in_channels == 3 else 0.0)
        elif augment is False:
            augment = None
        if augment is not None and not callable(augment):
            raise InputError(f"augment={augment!r} must be None, True or a callable (image, mask) -> (image, mask)")
        self.augment = augment
        self.seed, self.epoch = int(seed), 0

        dir_pairs = _PAIR_DIR_SETS.get(format) or (_PAIR_DIRS[format],)
        image_dir, mask_dir = (self.root / d for d in dir_pairs[0])
        images, masks = {}, {}
        for image_sub, mask_sub in dir_pairs:
            part = _list_images(self.root / image_sub)
            twice = sorted(set(part) & set(images))
            if twice:
                raise InputError(f"{self.root}: image {twice[0]!r} is in more than one of its folders")
            images.update(part)
            masks.update(_list_images(self.root / mask_sub))
        if not images:
            raise InputError(f"no images found in {image_dir}")
        stems = sorted(images, key=natural_key)
        bursts = crack500_bursts(stems) if format == "crack500" else {}  # over every pair, before selection
        if indices is not None and select is not None:
            raise InputError("give indices or select, not both")
        if indices is not None:
            stems = self._select(stems, indices)
        if select is not None:
            missing = [s for s in select if s not in images]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise InputError(f"{self.root}: no {format} image {missing[0]!r}{more} in {image_dir}")
            stems = list(dict.fromkeys(select))
        self.stems: list[str] = stems
        by_photo = format in ("deepcrack", "crackpatches")  # <photo>-<k>: crop k of a photo
        self.groups: list[str] = [deepcrack_source(s) if by_photo else bursts.get(s, s) for s in stems]
        suffix = _MASK_SUFFIX.get(format, "")
        self.image_paths: list[Path] = [images[s] for s in stems]
        self.mask_paths: list[Path] = []
        self.classes: list[str | None] = []
        self.original_sizes: list[tuple[int, int]] = []
        for s, img_path in zip(stems, self.image_paths):
            if s + suffix not in masks:
                named = f" named {s}{suffix}.<ext>" if suffix else ""
                raise InputError(f"no mask{named} in {mask_dir} for image {img_path.name}")
            mpath = masks[s + suffix]
            hw, mhw = image_size(img_path), image_size(mpath)
            if hw != mhw:
                raise InputError(
                    f"mask {mpath.name} is {mhw[1]}x{mhw[0]} but its image {img_path.name} "
                    f"is {hw[1]}x{hw[0]} (width x height)"
                )
            self.mask_paths.append(mpath)
            self.original_sizes.append(hw)
            self.classes.append(self._class_of(s, img_path) if format == "sd-saliency-900" else None)

    @staticmethod
    def _select(stems: list[str], indices: Iterable[int]) -> list[str]:
        out, seen = [], set()
        for i in indices:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
                raise InputError(f"indices must be integers, got {i!r}")
            if not 0 <= int(i) < len(stems):
                raise InputError(f"index {int(i)} is out of range for a dataset of {len(stems)} pairs")
            if int(i) not in seen:
                seen.add(int(i))
                out.append(stems[int(i)])
        return out

    @staticmethod
    def _class_of(stem: str, path: Path) -> str:
        prefix = stem.split("_", 1)[0]
        if prefix not in SD_SALIENCY_CLASSES:
            raise InputError(
                f"image {path.name}: file-name prefix {prefix!r} is not one of {', '.join(SD_SALIENCY_CLASSES)}"
            )
        return prefix

    def meta(self, i: int) -> dict[str, Any]:
        """What :func:`restore` needs for item ``i``, plus its stem, class and file paths."""
        m = fit_meta(self.original_sizes[i], self.size, self.pad_multiple)
        m.update(
            stem=self.stems[i],
            cls=self.classes[i],
            image_path=str(self.image_paths[i]),
            mask_path=str(self.mask_paths[i]),
        )
        return m

    def __len__(self) -> int:
        return len(self.stems)

    def set_epoch(self, epoch: int) -> None:
        """The epoch a seeded augmentation draws for (the engine's sampler sets it)."""
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = dataset_index(i, len(self), "SurfaceSegmentationDataset")
        image = load_image(self.image_paths[i], self.in_channels)
        mask = load_mask(self.mask_paths[i])
        if image.shape[1:] != mask.shape[1:]:
            raise InputError(f"mask {self.mask_paths[i].name} is not the size of image {self.image_paths[i].name}")
        if getattr(self.augment, "seeded", False):
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return self.augment(torch.from_numpy(image), torch.from_numpy(mask), rng)
        meta = fit_meta(image.shape[1:], self.size, self.pad_multiple)
        x = torch.from_numpy(np.ascontiguousarray(apply_fit(image, meta), dtype=np.float32))
        y = torch.from_numpy(np.ascontiguousarray(apply_fit(mask, meta, is_mask=True), dtype=np.float32))
        if self.augment is not None:
            x, y = self.augment(x, y)
        return x, y

    def __repr__(self) -> str:
        policy = f"resize to {self.size}" if self.size else f"pad to a multiple of {self.pad_multiple}"
        return (
            f"SurfaceSegmentationDataset({str(self.root)!r}, format={self.format!r}, {len(self)} pairs, "
            f"{policy}, in_channels={self.in_channels}, augment={self.augment!r})"
        )


class CombinedSegmentationDataset(Dataset):
    """Several :class:`SurfaceSegmentationDataset` read as one, each in its own layout: items of
    source ``name`` are listed as ``"<name>/<stem>"`` (stems and groups), ``classes`` is the source
    name (so evaluation reports each source apart), and the other attributes are those of the
    sources, concatenated in order. ``parts``: ``[(name, dataset), ...]`` with distinct names."""

    def __init__(self, parts: Sequence[tuple[str, SurfaceSegmentationDataset]]):
        names = [n for n, _ in parts]
        if not parts or len(set(names)) != len(names):
            raise InputError(f"data sources need distinct names, got {names}")
        self.parts = list(parts)
        self.format = "+".join(ds.format for _, ds in parts)
        self.stems, self.groups, self.classes = [], [], []
        self.image_paths, self.mask_paths, self.original_sizes = [], [], []
        self._index: list[tuple[int, int]] = []
        for k, (name, ds) in enumerate(parts):
            self.stems += [f"{name}/{s}" for s in ds.stems]
            self.groups += [f"{name}/{g}" for g in ds.groups]
            self.classes += [name] * len(ds)
            self.image_paths += ds.image_paths
            self.mask_paths += ds.mask_paths
            self.original_sizes += ds.original_sizes
            self._index += [(k, j) for j in range(len(ds))]

    def reorder(self, order: Sequence[int]) -> None:
        """Keep the items at positions ``order``, in that order."""
        self._index = [self._index[i] for i in order]
        for attr in ("stems", "groups", "classes", "image_paths", "mask_paths", "original_sizes"):
            values = getattr(self, attr)
            setattr(self, attr, [values[i] for i in order])

    def meta(self, i: int) -> dict[str, Any]:
        k, j = self._index[dataset_index(i, len(self), "CombinedSegmentationDataset")]
        return {**self.parts[k][1].meta(j), "stem": self.stems[i], "cls": self.classes[i]}

    def set_epoch(self, epoch: int) -> None:
        for _, ds in self.parts:
            ds.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k, j = self._index[dataset_index(i, len(self), "CombinedSegmentationDataset")]
        return self.parts[k][1][j]

    def __repr__(self) -> str:
        return "CombinedSegmentationDataset(" + ", ".join(f"{n}: {ds!r}" for n, ds in self.parts) + ")"


def source_layout(sources: Sequence[tuple[str | None, str | Path, str]], root: str | Path, default: str) -> str:
    """The layout (format) of the source at ``root`` among ``sources`` (``[(name, root, format)]``),
    else ``default``: how to read a folder a multi-source run is evaluated on."""
    for _, src_root, fmt in sources:
        if Path(src_root).resolve() == Path(root).resolve():
            return fmt
    return default


def read_pairs(
    sources: Sequence[tuple[str | None, str | Path, str]],
    stems: Sequence[str] | None = None,
    *,
    seed: int = 0,
    **kwargs,
) -> SurfaceSegmentationDataset | CombinedSegmentationDataset:
    """The image/mask pairs of ``sources`` (``[(name, root, format)]``), restricted to ``stems`` in
    that order when given. One unnamed source (``name=None``) is a plain
    :class:`SurfaceSegmentationDataset` with its own stems; named ones are a
    :class:`CombinedSegmentationDataset` whose stems are ``<name>/<stem>``. ``kwargs`` go to every
    :class:`SurfaceSegmentationDataset` (size, augment, in_channels, ...); source k draws a seeded
    augmentation from ``seed * 1_000_003 + k``, so two sources never share a stream."""

    def one(root, fmt, wanted, k):
        return SurfaceSegmentationDataset(root, fmt, select=wanted, seed=seed * 1_000_003 + k, **kwargs)

    if len(sources) == 1 and sources[0][0] is None:
        _, root, fmt = sources[0]
        return one(root, fmt, None if stems is None else list(stems), 0)
    parts = []
    for k, (name, root, fmt) in enumerate(sources):
        own = None if stems is None else [s.split("/", 1)[1] for s in stems if s.split("/", 1)[0] == name]
        parts.append((name, one(root, fmt, own, k)))
    combined = CombinedSegmentationDataset(parts)
    if stems is not None:
        position = {s: i for i, s in enumerate(combined.stems)}
        unknown = [s for s in stems if s not in position]
        if unknown:
            raise InputError(f"{unknown[0]!r} names no data source ({', '.join(n for n, _, _ in sources)})")
        combined.reorder([position[s] for s in stems])
    return combined
