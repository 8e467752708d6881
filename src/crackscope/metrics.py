"""Segmentation metrics from per-sample confusion counts: DSC, IoU, accuracy, precision, recall.

Predictions are binarised first: for one channel (or no channel) p = sigmoid(logit) (or the given
probability, ``from_logits=False``) is foreground where p > threshold (0.5); for C >= 2 channels
the argmax class is taken and every class other than 0 counts as foreground (defect / crack).
Targets are foreground where > 0.5 (binary) or != 0 (class indices). Per sample, with TP, FP, FN,
TN the pixel counts (foreground = crack):

    DSC       = 2 TP / (2 TP + FP + FN)      (Moreh et al., eq. 10; equal to the F1 score)
    IoU       = TP / (TP + FP + FN)          (Jaccard index of the foreground)
    accuracy  = (TP + TN) / (TP + TN + FP + FN)   (pixel accuracy, eq. 11)
    precision = TP / (TP + FP)
    recall    = TP / (TP + FN)
    iou_background = TN / (TN + FP + FN)     (IoU of the background class)
    miou      = (IoU + iou_background) / 2   (mean IoU over the two classes, as the surface
                                              segmentation literature reports it)

A ratio whose denominator is 0 is 1.0 when the prediction and the target are both empty
(TP = FP = FN = 0: a correct "no crack") and 0.0 otherwise (e.g. precision when nothing was
predicted but a crack was missed).

:func:`summarize` reports every metric twice: MICRO (``dsc`` ...), from the counts summed over
all samples, and ``*_per_sample``, the mean over samples of the per-sample value. They differ:
micro weights each pixel equally, per-sample weights each plate equally, and an empty-vs-empty
sample scores 1.0 per sample but adds nothing to the micro counts.

:func:`by_crack_size` repeats the summary for the samples whose largest crack is longer than
0, 1, 2, 3, 4 µm. The MicroCrackAttentionNeXt paper (Table 1) labels such per-size columns
"accuracies" while its text quotes the same numbers as DSC; crackscope reports DSC and the rest per
size class. :func:`cell_oracle` is the wave-field reference a model has to beat: every pixel of
each sensor cell that holds crack, i.e. cracks located to the nearest sensor and no finer.

Crack detection papers also report ODS and OIS F-measures with a pixel tolerance
(:func:`crack_f_measures`, documented there).

Image classification (:func:`classification_summary`, :class:`ClassificationMetrics`) works on the
(K, K) confusion matrix of whole images instead: see :func:`classification_summary`.
:func:`accuracy_interval` says how far a test set of n images pins the accuracy down.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_stat_scores

from crackscope.errors import InputError

__all__ = [
    "METRICS",
    "confusion_counts",
    "summarize",
    "by_crack_size",
    "cell_oracle",
    "SegmentationMetrics",
    "THRESHOLD_GRID",
    "sweep_counts",
    "best_threshold",
    "F_MEASURE_THRESHOLDS",
    "crack_f_counts",
    "crack_f_from_counts",
    "crack_f_measures",
    "multiclass_confusion",
    "iou_from_confusion",
    "multiclass_iou",
    "classification_summary",
    "accuracy_interval",
    "ClassificationMetrics",
]

METRICS = ("dsc", "accuracy", "iou", "precision", "recall", "iou_background", "miou")
# what a segmentation run logs as val/<key> (the first on the progress bar)
SEGMENTATION_VAL_KEYS = ("dsc", "iou", "precision", "recall", "accuracy", "miou")
CLASSIFICATION_VAL_KEYS = ("accuracy", "precision", "recall", "f1")  # macro over classes
DEFAULT_BOUNDS_UM = (0, 1, 2, 3, 4)
# candidate crack thresholds a run may choose its operating point from (on validation data only)
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _foreground(logits: Tensor, target: Tensor, threshold: float, from_logits: bool) -> tuple[Tensor, Tensor]:
    """Boolean predicted and true foreground, both (B, N)."""
    if not (torch.is_tensor(logits) and torch.is_tensor(target)):
        raise InputError("logits and target must be tensors")
    if logits.ndim < 1 or target.ndim < 1 or logits.shape[0] != target.shape[0]:
        raise InputError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} need the same batch size")
    if not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold must be in [0, 1], got {threshold!r}")
    b = logits.shape[0]
    if logits.ndim == target.ndim + 1 and logits.shape[1] >= 2:
        if tuple(logits.shape[2:]) != tuple(target.shape[1:]):
            raise InputError(f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
        pred = logits.argmax(1) != 0
        true = target != 0
    else:
        if logits.ndim == target.ndim + 1 and logits.shape[1] == 1:
            logits = logits.squeeze(1)
        if tuple(logits.shape) != tuple(target.shape):
            raise InputError(f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
        scores = logits.float() if logits.is_floating_point() else logits.double()
        p = torch.sigmoid(scores) if from_logits else scores
        pred = p > threshold
        true = target if target.dtype == torch.bool else target > 0.5
    return pred.reshape(b, -1), true.reshape(b, -1)


def confusion_counts(logits: Tensor, target: Tensor, threshold: float = 0.5, from_logits: bool = True) -> Tensor:
    """Per-sample pixel counts (B, 4) int64: columns TP, FP, FN, TN with foreground = crack.

    ``logits``: (B, 1, ...) or (B, ...) binary logits (probabilities if ``from_logits=False``),
    or (B, C, ...) class scores with C >= 2 (argmax; class != 0 is foreground).
    ``target``: (B, 1, ...) / (B, ...) mask in [0, 1], or (B, ...) class indices.
    """
    pred, true = _foreground(logits, target, threshold, from_logits)
    # Boolean (label) inputs: torchmetrics counts them as they are, with no sigmoid or threshold of its own.
    # Its "samplewise" result loses the batch axis for a batch of one (a squeeze), so one sample is counted
    # "global", which over that one sample is the same count.
    average = "samplewise" if pred.shape[0] > 1 else "global"
    stats = binary_stat_scores(pred, true, multidim_average=average, validate_args=False).reshape(-1, 5)
    return stats[:, [0, 1, 3, 2]].long()  # torchmetrics' TP, FP, TN, FN, support -> TP, FP, FN, TN


def _ratio(num: Tensor, den: Tensor, empty: Tensor) -> Tensor:
    """num / den, with 0/0 -> 1.0 for empty-vs-empty and 0.0 otherwise."""
    fallback = torch.where(empty, torch.ones_like(num), torch.zeros_like(num))
    return torch.where(den > 0, num / den.clamp_min(1), fallback)


def _metric_values(counts: Tensor) -> Tensor:
    """(..., 4) TP, FP, FN, TN -> (..., 5) float64 in the order of :data:`METRICS`."""
    c = counts.double()
    tp, fp, fn, tn = c.unbind(-1)
    empty = (tp + fp + fn) == 0
    iou = _ratio(tp, tp + fp + fn, empty)
    iou_bg = _ratio(tn, tn + fp + fn, (tn + fp + fn) == 0)
    return torch.stack(
        [
            _ratio(2 * tp, 2 * tp + fp + fn, empty),
            _ratio(tp + tn, tp + fp + fn + tn, empty),
            iou,
            _ratio(tp, tp + fp, empty),
            _ratio(tp, tp + fn, empty),
            iou_bg,
            (iou + iou_bg) / 2,
        ],
        -1,
    )


def sample_metrics(counts: Tensor) -> dict[str, Tensor]:
    """Each sample's own scores from its (B, 4) TP, FP, FN, TN counts: ``{name: (B,) float64}`` for
    every name of :data:`METRICS`, with this module's convention for an empty mask predicted empty
    (1.0). The figures of every pipeline rank samples by these."""
    values = _metric_values(counts)
    return {name: values[:, i] for i, name in enumerate(METRICS)}


def _summary(count_sum: Tensor, per_sample_sum: Tensor, n: int) -> dict:
    """The summarize() dict from summed counts (4,), summed per-sample metrics (5,) and n."""
    out: dict = {"n_samples": int(n)}
    micro = _metric_values(count_sum).tolist() if n else [None] * len(METRICS)
    ps = (per_sample_sum.double() / n).tolist() if n else [None] * len(METRICS)
    for name, m, s in zip(METRICS, micro, ps):
        out[name] = m
        out[f"{name}_per_sample"] = s
    return out


def _as_counts(counts) -> Tensor:
    c = torch.as_tensor(counts)
    if c.ndim != 2 or c.shape[1] != 4:
        raise InputError(f"counts must have shape (N, 4) (TP, FP, FN, TN), got {tuple(c.shape)}")
    return c.long()


def summarize(counts) -> dict:
    """Metrics of (N, 4) confusion counts: ``dsc``, ``accuracy``, ``iou``, ``precision``,
    ``recall``, ``iou_background``, ``miou`` (micro: from the summed counts), each also as
    ``<name>_per_sample`` (mean of the per-sample values), and ``n_samples``. With N = 0 every metric is ``None``.
    """
    c = _as_counts(counts)
    return _summary(c.sum(0), _metric_values(c).sum(0), c.shape[0])


def _bound_key(bound: float) -> str:
    return f">{float(bound):g}"


def _check_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    try:
        out = tuple(float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a list of lengths in µm, got {bounds!r}") from None
    if len({_bound_key(b) for b in out}) != len(out):
        raise InputError(f"bounds must be distinct, got {bounds!r}")
    return out


def _size_masks(lengths, n: int, bounds: tuple[float, ...], device) -> Tensor:
    """(G, n) bool: sample longer than each bound."""
    length = torch.as_tensor(lengths, dtype=torch.float64, device=device).reshape(-1)
    if length.shape[0] != n:
        raise InputError(f"max_crack_length_um has {length.shape[0]} entries for {n} samples")
    b = torch.tensor(bounds, dtype=torch.float64, device=device)
    return length[None, :] > b[:, None]


def by_crack_size(counts, max_crack_length_um, bounds: Sequence[float] = DEFAULT_BOUNDS_UM) -> dict:
    """:func:`summarize` per size class: key ``">b"`` (``">0"`` ... ``">4"``) over the samples whose
    largest crack is longer than b µm (strictly); an empty class has ``n_samples`` 0 and None values.
    """
    c = _as_counts(counts)
    bounds = _check_bounds(bounds)
    masks = _size_masks(max_crack_length_um, c.shape[0], bounds, c.device)
    return {_bound_key(b): summarize(c[m]) for b, m in zip(bounds, masks)}


def cell_oracle(masks: Tensor, grid: int) -> Tensor:
    """(N, M, M) masks -> (N, M, M) bool: all M/grid x M/grid pixels of every sensor cell (the
    mask split into grid x grid cells, one per sensor) that holds a crack pixel. Its DSC against
    the masks is what locating cracks to the nearest sensor scores; ``None`` when M is not a
    multiple of ``grid``."""
    true = torch.as_tensor(masks) > 0.5
    n, m = true.shape[0], true.shape[-1]
    if grid <= 0 or m % grid or true.shape[-2] != m:
        return None
    p = m // grid
    cells = true.reshape(n, grid, p, grid, p).any(dim=4).any(dim=2)
    return cells.repeat_interleave(p, dim=1).repeat_interleave(p, dim=2)


def _check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(t) for t in thresholds)
    if any(not 0.0 < t < 1.0 for t in out) or list(out) != sorted(set(out)):
        raise InputError(f"sweep thresholds must be increasing and inside (0, 1), got {list(thresholds)!r}")
    return out


def sweep_counts(logits: Tensor, target: Tensor, thresholds: Sequence[float], from_logits: bool = True) -> Tensor:
    """(K, 3) int64 micro TP, FP, FN of binary predictions at each of K thresholds, summed over the
    batch and every pixel (foreground where the probability is > threshold, as everywhere here)."""
    pred_t = [_foreground(logits, target, t, from_logits) for t in thresholds]
    return torch.stack([torch.stack([(p & y).sum(), (p & ~y).sum(), (~p & y).sum()]) for p, y in pred_t]).long()


def best_threshold(counts: Tensor, thresholds: Sequence[float]) -> dict:
    """``{"dsc_best", "threshold_best"}``: the threshold of the (K, 3) :func:`sweep_counts` with the
    highest micro DSC = 2 TP / (2 TP + FP + FN) (empty predicted empty: 1, as everywhere here), the
    lowest such threshold on ties."""
    tp, fp, fn = counts.double().unbind(-1)
    dsc = _ratio(2 * tp, 2 * tp + fp + fn, (tp + fp + fn) == 0)
    k = int(torch.argmax(dsc))  # the first maximum
    return {"dsc_best": float(dsc[k]), "threshold_best": float(thresholds[k])}


# --------------------------------------------------------------------------------------------
# ODS / OIS F-measure with a pixel tolerance (crack detection)

# the crack literature's threshold grid (DeepCrack's and BSDS's evaluation: 99 steps of 0.01)
F_MEASURE_THRESHOLDS = tuple(round(0.01 * k, 2) for k in range(1, 100))


def _disk(radius: float) -> np.ndarray:
    """Boolean footprint of the pixel offsets (dy, dx) with dy^2 + dx^2 <= radius^2."""
    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    return dy * dy + dx * dx <= float(radius) ** 2


def _counts_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(K,) number of ``values`` strictly above each of the increasing ``thresholds``."""
    above = np.searchsorted(thresholds, values, side="left")  # how many thresholds each value exceeds
    hist = np.bincount(above, minlength=len(thresholds) + 1)
    return hist[::-1].cumsum()[::-1][1:]


def _as_map(x, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    while a.ndim > 2 and a.shape[0] == 1:  # (1, H, W) or (1, 1, H, W): one image
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"{name} must be one (H, W) map per image, got shape {tuple(np.shape(x))}")
    return a


def crack_f_counts(prob, mask, thresholds: Sequence[float] = F_MEASURE_THRESHOLDS, tolerance_px: float = 0) -> Tensor:
    """(K, 4) int64 tolerance counts of ONE image at each of K thresholds: columns ``matched_pred``
    (predicted crack pixels with a true crack pixel within ``tolerance_px``), ``n_pred``,
    ``matched_true`` (true crack pixels with a predicted one within ``tolerance_px``), ``n_true``.

    ``prob``: (H, W) crack probability (numpy or torch; a leading 1 is dropped), predicted crack
    where ``prob > threshold`` as everywhere here; ``mask``: (H, W), crack where > 0.5 (or bool).
    Distances are Euclidean: the tolerance region of a pixel is the disk of radius ``tolerance_px``
    around it (offsets dy^2 + dx^2 <= t^2; t = 1 the 4-neighbours, t = 2 also the diagonals and the
    pixels two steps away), applied as a max filter (a grey dilation of ``prob``, a binary dilation
    of ``mask``) -- the same as thresholding a distance transform at t. Each pixel is matched on
    its own (no one-to-one pairing as in BSDS's ``correspondPixels``): the relaxed precision and
    recall of CrackTree (Zou et al. 2012) and CrackForest (Shi et al. 2016).
    """
    from scipy import ndimage

    p, m = _as_map(prob, "prob"), _as_map(mask, "mask")
    if p.shape != m.shape:
        raise InputError(f"prob {p.shape} and mask {m.shape} of one image differ in size")
    t = float(tolerance_px)
    if not np.isfinite(t) or t < 0:
        raise InputError(f"tolerance_px must be a number of pixels >= 0, got {tolerance_px!r}")
    p = p.astype(np.float32 if p.dtype == np.float32 else np.float64)  # compare in the map's precision
    th = np.asarray(_check_thresholds(thresholds), dtype=p.dtype)
    true = m.astype(bool) if m.dtype == bool else m > 0.5
    if t >= 1:
        disk = _disk(t)
        near_true = ndimage.binary_dilation(true, structure=disk)
        p_near = ndimage.maximum_filter(p, footprint=disk, mode="constant", cval=-np.inf)
    else:
        near_true, p_near = true, p
    n_pred = _counts_above(p.ravel(), th)
    matched_pred = _counts_above(p[near_true], th)
    matched_true = _counts_above(p_near[true], th)
    n_true = np.full(len(th), int(true.sum()))
    return torch.from_numpy(np.stack([matched_pred, n_pred, matched_true, n_true], 1).astype(np.int64))


def crack_f_curve(counts) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F = 2PR / (P + R) of (..., 4) tolerance counts (:func:`crack_f_counts`;
    summed over images, one value per threshold), float64. 0/0 follows the rule of this module: 1.0
    when nothing is predicted and nothing is true, else 0.0."""
    c = torch.as_tensor(counts).double()
    mp, n_pred, mt, n_true = c.unbind(-1)
    empty = (n_pred == 0) & (n_true == 0)
    precision = _ratio(mp, n_pred, empty)
    recall = _ratio(mt, n_true, empty)
    pr = precision + recall
    return precision, recall, torch.where(pr > 0, 2 * precision * recall / pr.clamp_min(1e-300), torch.zeros_like(pr))


def crack_f_from_counts(counts, thresholds: Sequence[float] = F_MEASURE_THRESHOLDS) -> dict:
    """ODS and OIS of (N, K, 4) per-image :func:`crack_f_counts` (see :func:`crack_f_measures`)."""
    c = torch.as_tensor(counts).long()
    th = _check_thresholds(thresholds)
    if c.ndim != 3 or c.shape[1:] != (len(th), 4):
        raise InputError(f"counts must have shape (N, {len(th)}, 4) for {len(th)} thresholds, got {tuple(c.shape)}")
    out: dict = {"n_images": int(c.shape[0])}
    if c.shape[0] == 0:
        return out | dict.fromkeys(("ods_f", "ods_threshold", "ods_precision", "ods_recall", "ois_f"))
    precision, recall, f = crack_f_curve(c.sum(0))
    k = int(torch.argmax(f))  # the first maximum: the lowest threshold on ties
    out.update(ods_f=float(f[k]), ods_threshold=th[k], ods_precision=float(precision[k]), ods_recall=float(recall[k]))
    out["ois_f"] = float(crack_f_curve(c)[2].max(1).values.mean())
    return out


def crack_f_measures(probs, masks, thresholds: Sequence[float] = F_MEASURE_THRESHOLDS, tolerance_px: float = 0) -> dict:
    """The crack literature's F-measures of per-image probability maps against their masks.

    ``probs`` and ``masks``: sequences of (H, W) maps (numpy or torch; images may differ in size)
    or (N, H, W) arrays; ``thresholds`` increasing inside (0, 1), by default
    :data:`F_MEASURE_THRESHOLDS` (0.01 ... 0.99); ``tolerance_px`` >= 0. At each threshold,
    with the counts of :func:`crack_f_counts` (a predicted crack pixel is correct when a true crack
    pixel lies within ``tolerance_px``, a true one is found when a predicted one does),
    precision P = matched_pred / n_pred, recall R = matched_true / n_true, F = 2PR / (P + R)
    (0/0: 1.0 when the image has no crack and none is predicted, else 0.0).

    * ``ods_f`` (optimal dataset scale): the best F over thresholds of the counts summed over all
      images, i.e. one threshold fixed for the whole dataset: ``ods_threshold`` (the lowest on
      ties), with its ``ods_precision`` and ``ods_recall``;
    * ``ois_f`` (optimal image scale): the mean over images of each image's best F;
    * ``n_images``. With no images every value is ``None``.

    OIS is usually above ODS (each image gets its own threshold), but not by construction: ODS is
    the F of counts summed over the images, not a mean of per-image F values.
    """
    probs = list(probs)
    masks = list(masks)
    if len(probs) != len(masks):
        raise InputError(f"{len(probs)} probability maps for {len(masks)} masks")
    th = _check_thresholds(thresholds)
    if not probs:
        return crack_f_from_counts(torch.zeros(0, len(th), 4, dtype=torch.long), th)
    counts = torch.stack([crack_f_counts(p, m, th, tolerance_px) for p, m in zip(probs, masks)])
    return crack_f_from_counts(counts, th)


# False cracks on sound surface (crack inspection of survey photos)

# what counts as sound surface, and as a false crack on it (docs/cascade.md#false-alarms)
SOUND_CLEARANCE_PX = 16  # a pixel is crack-free when no labelled crack pixel lies within this distance
SOUND_TILE_PX = 128  # the tiles of a survey photo that are judged crack-free or not
FALSE_CRACK_MIN_PX = 20  # a predicted crack component this large (pixels, in one tile) is a false crack


def crack_free_pixels(truth: np.ndarray, clearance_px: float = SOUND_CLEARANCE_PX) -> np.ndarray:
    """(H, W) bool: the pixels more than ``clearance_px`` (Euclidean, centre to centre) from every
    labelled crack pixel of ``truth`` (bool); all of them in an image without a crack."""
    from scipy import ndimage

    if not truth.any():
        return np.ones_like(truth, dtype=bool)
    return ndimage.distance_transform_edt(~truth) > float(clearance_px)


def false_alarm_counts(
    pred,
    mask,
    *,
    clearance_px: float = SOUND_CLEARANCE_PX,
    tile_px: int = SOUND_TILE_PX,
    min_component_px: int = FALSE_CRACK_MIN_PX,
    sound: np.ndarray | None = None,
) -> dict[str, int]:
    """What a segmenter marks on the crack-free part of ONE image, as counts to pool over a set.

    ``pred``: (H, W) predicted crack mask (bool, or > 0.5); ``mask``: (H, W) labelled cracks.
    A pixel is **crack-free** when the Euclidean distance from its centre to the nearest labelled
    crack pixel's is more than ``clearance_px`` (every pixel of an image without a crack is). Tiles
    are the ``tile_px`` squares of the grid from the top-left corner (whole tiles only); a tile is
    crack-free when every pixel in it is. Returns:

    * ``sound_px``: crack-free pixels; ``false_px``: those predicted crack;
    * ``sound_tiles``: crack-free tiles; ``false_tiles``: those holding a connected component of
      predicted crack (8-connectivity, as :mod:`crackscope.analysis.crack_measure`, within the
      tile) of at least ``min_component_px`` pixels: a crack an inspector would see there.

    ``sound``: that crack-free mask (:func:`crack_free_pixels` of ``mask``) when the caller has it
    already, e.g. to score several predictions of one image. Pool with :func:`false_alarm_summary`.
    """
    from scipy import ndimage

    p, m = _as_map(pred, "pred"), _as_map(mask, "mask")
    if p.shape != m.shape:
        raise InputError(f"pred {p.shape} and mask {m.shape} of one image differ in size")
    p = p.astype(bool) if p.dtype == bool else p > 0.5
    true = m.astype(bool) if m.dtype == bool else m > 0.5
    if sound is None:
        sound = crack_free_pixels(true, clearance_px)
    elif sound.shape != true.shape:
        raise InputError(f"sound {sound.shape} and mask {true.shape} of one image differ in size")
    counts = {"sound_px": int(sound.sum()), "false_px": int((p & sound).sum()), "sound_tiles": 0, "false_tiles": 0}
    eight = np.ones((3, 3), dtype=bool)
    h, w = p.shape
    for y in range(0, h - tile_px + 1, tile_px):
        for x in range(0, w - tile_px + 1, tile_px):
            if not sound[y : y + tile_px, x : x + tile_px].all():
                continue
            counts["sound_tiles"] += 1
            tile = p[y : y + tile_px, x : x + tile_px]
            if tile.sum() >= min_component_px:
                labels, n = ndimage.label(tile, structure=eight)
                if n and np.bincount(labels.ravel())[1:].max() >= min_component_px:
                    counts["false_tiles"] += 1
    return counts


def false_alarm_summary(
    counts: Sequence[dict[str, int]],
    *,
    clearance_px: float = SOUND_CLEARANCE_PX,
    tile_px: int = SOUND_TILE_PX,
    min_component_px: int = FALSE_CRACK_MIN_PX,
) -> dict:
    """Pooled :func:`false_alarm_counts` of a set of images: ``false_px_per_megapixel`` (false crack
    pixels per million crack-free pixels), ``false_tile_share`` (the share of crack-free tiles with
    a false crack), the summed counts, and the definitions the counts were made with (pass the same
    keywords). A rate whose denominator is 0 is ``None`` (no crack-free pixel or tile in the set)."""
    total = {k: sum(int(c[k]) for c in counts) for k in ("sound_px", "false_px", "sound_tiles", "false_tiles")}
    return {
        "false_px_per_megapixel": total["false_px"] / total["sound_px"] * 1e6 if total["sound_px"] else None,
        "false_tile_share": total["false_tiles"] / total["sound_tiles"] if total["sound_tiles"] else None,
        **total,
        "clearance_px": clearance_px,
        "tile_px": tile_px,
        "min_component_px": min_component_px,
    }


class SegmentationMetrics(Metric):
    """Accumulates :func:`confusion_counts` over batches; ``compute()`` equals :func:`summarize`
    of all samples, plus ``"by_crack_size"`` (:func:`by_crack_size`) when every ``update`` got
    ``max_crack_length_um``. With ``sweep`` (thresholds, e.g. :data:`THRESHOLD_GRID`) it also
    counts TP, FP, FN at each of them and adds ``dsc_best`` and ``threshold_best``
    (:func:`best_threshold`): the operating point a run chooses on its validation data. States are
    sums (counts and per-sample metric sums per size group), so torchmetrics reduces them across
    DDP processes.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        threshold: float = 0.5,
        from_logits: bool = True,
        bounds: Sequence[float] = DEFAULT_BOUNDS_UM,
        sweep: Sequence[float] = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= float(threshold) <= 1.0:
            raise InputError(f"threshold must be in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self.sweep = _check_thresholds(sweep)
        # micro TP, FP, FN at every sweep threshold: compute() adds dsc_best / threshold_best
        self.add_state("sweep_counts", torch.zeros(len(self.sweep), 3, dtype=torch.long), dist_reduce_fx="sum")
        self.from_logits = bool(from_logits)
        self.bounds = _check_bounds(bounds)
        g = 1 + len(self.bounds)  # row 0: all samples; row i: longer than bounds[i-1]
        self.add_state("count_sum", torch.zeros(g, 4, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("metric_sum", torch.zeros(g, len(METRICS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", torch.zeros(g, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_with_length", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor, max_crack_length_um=None) -> None:
        c = confusion_counts(logits, target, self.threshold, self.from_logits).to(self.count_sum.device)
        b = c.shape[0]
        rows = torch.zeros(len(self.bounds) + 1, b, dtype=torch.bool, device=c.device)
        rows[0] = True
        if max_crack_length_um is not None:
            rows[1:] = _size_masks(max_crack_length_um, b, self.bounds, c.device)
            self.n_with_length += b
        if self.sweep:
            self.sweep_counts += sweep_counts(logits, target, self.sweep, self.from_logits).to(self.sweep_counts.device)
        m = rows[:, :, None]
        self.count_sum += (m * c[None]).sum(1)
        self.metric_sum += (m * _metric_values(c)[None]).sum(1)
        self.n += rows.sum(1)

    def compute(self) -> dict:
        n_all = int(self.n[0])
        out = _summary(self.count_sum[0], self.metric_sum[0], n_all)
        if self.sweep:
            out.update(best_threshold(self.sweep_counts, self.sweep))
        n_len = int(self.n_with_length)
        if n_len:
            if n_len != n_all:
                raise InputError(
                    f"max_crack_length_um was given for {n_len} of {n_all} samples; give it for every batch or none"
                )
            out["by_crack_size"] = {
                _bound_key(b): _summary(self.count_sum[i + 1], self.metric_sum[i + 1], int(self.n[i + 1]))
                for i, b in enumerate(self.bounds)
            }
        return out


# --------------------------------------------------------------------------------------------
# multi-class


def multiclass_confusion(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """(C, C) int64 pixel confusion matrix, rows = true class, columns = predicted class.

    ``pred`` is a label map shaped like ``target``, or scores (B, C, ...) reduced by argmax.
    """
    if pred.ndim == target.ndim + 1:
        if pred.shape[1] != num_classes:
            raise InputError(f"pred has {pred.shape[1]} class channels, expected num_classes={num_classes}")
        pred = pred.argmax(1)
    if tuple(pred.shape) != tuple(target.shape):
        raise InputError(f"pred {tuple(pred.shape)} does not match target {tuple(target.shape)}")
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    if bool(((p < 0) | (p >= num_classes) | (t < 0) | (t >= num_classes)).any()):
        raise InputError(f"class indices must lie in [0, {num_classes - 1}]")
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    return multiclass_confusion_matrix(p, t, num_classes, validate_args=False).long()


def iou_from_confusion(confusion: Tensor) -> dict:
    """Per-class IoU_c = CM_cc / (row_c + col_c - CM_cc), ``miou`` their mean and ``pixel_accuracy``
    = trace / total. A class absent from both prediction and target has IoU ``nan`` and is left out
    of the mean (for binary input mIoU is the mean of background and defect IoU).
    """
    cm = confusion.double()
    inter = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(inter, float("nan")))
    present = ~iou.isnan()
    total = cm.sum()
    return {
        "iou_per_class": iou.tolist(),
        "miou": float(iou[present].mean()) if bool(present.any()) else None,
        "pixel_accuracy": float(inter.sum() / total) if total > 0 else None,
    }


def multiclass_iou(pred: Tensor, target: Tensor, num_classes: int) -> dict:
    """:func:`iou_from_confusion` of :func:`multiclass_confusion` (``pred`` labels or class scores)."""
    return iou_from_confusion(multiclass_confusion(pred, target, num_classes))


# --------------------------------------------------------------------------------------------
# image classification


def classification_summary(confusion, classes: Sequence[str] | None = None) -> dict:
    """Metrics of a (K, K) image confusion matrix (rows = true class, columns = predicted class).

    * ``accuracy`` = trace / total;
    * per class c: precision_c = CM_cc / column_c, recall_c = CM_cc / row_c, F1_c = 2 P R / (P + R),
      with 0 for a zero denominator (a class never predicted has precision 0, as scikit-learn's
      default ``zero_division=0``);
    * ``precision``, ``recall``, ``f1``: MACRO averages, the unweighted mean of the per-class values
      over the classes that occur in the targets or the predictions (a class absent from both is
      left out of the mean and reported with ``None`` values); macro F1 is the mean of the F1_c,
      not the F1 of macro precision and recall (scikit-learn's ``average="macro"``);
    * ``confusion`` (the matrix as nested lists), ``per_class`` {name: precision, recall, f1,
      support (= row_c)}, ``classes`` (names; ``"0"``, ``"1"``, ... when not given), ``n_images``;
    * ``errors`` (images off the diagonal) and ``accuracy_interval_95``, the exact 95 % interval
      of the accuracy that ``n_images`` test images allow (:func:`accuracy_interval`).

    With no images every metric is ``None``.
    """
    cm = torch.as_tensor(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise InputError(f"confusion must be a square (K, K) matrix, got shape {tuple(cm.shape)}")
    k = cm.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise InputError(f"{len(names)} class names for a {k}-class confusion matrix")
    c = cm.long().double()
    tp, rows, cols = c.diagonal(), c.sum(1), c.sum(0)
    precision = torch.where(cols > 0, tp / cols.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(rows > 0, tp / rows.clamp_min(1), torch.zeros_like(tp))
    pr = precision + recall
    f1 = torch.where(pr > 0, 2 * precision * recall / pr.clamp_min(1e-300), torch.zeros_like(tp))
    present = (rows + cols) > 0
    total = float(c.sum())

    def macro(v: Tensor):
        return float(v[present].mean()) if total > 0 else None

    per_class = {
        name: (
            {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i])}
            if present[i]
            else {"precision": None, "recall": None, "f1": None}
        )
        | {"support": int(rows[i])}
        for i, name in enumerate(names)
    }
    correct = int(round(float(tp.sum())))
    interval = list(accuracy_interval(correct, int(total))) if total > 0 else None
    return {
        "accuracy": float(tp.sum() / total) if total > 0 else None,
        "precision": macro(precision),
        "recall": macro(recall),
        "f1": macro(f1),
        "n_images": int(total),
        "errors": int(total) - correct,
        "accuracy_interval_95": interval,
        "classes": names,
        "confusion": cm.long().tolist(),
        "per_class": per_class,
    }


def accuracy_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided ``confidence`` interval of an accuracy measured as
    ``correct`` of ``n`` independent test images: the binomial success probabilities p for which
    seeing ``correct`` or more (lower end), or ``correct`` or fewer (upper end), has probability
    (1 - confidence) / 2, with lower = 0 at k = 0 and upper = 1 at k = n (Clopper & Pearson 1934):
    scipy's ``binomtest(k, n).proportion_ci(method="exact")``, which solves those two tail equations
    (to about 1e-12; equal to the beta quantiles B^-1(a/2; k, n - k + 1) and B^-1(1 - a/2; k + 1, n - k)).
    It is the spread of the test sample only, not of training (seeds, splits)."""
    from scipy.stats import binomtest

    if not (isinstance(n, int) and isinstance(correct, int) and 0 <= correct <= n and n > 0):
        raise InputError(f"accuracy_interval needs whole numbers 0 <= correct <= n, n > 0 (got {correct} of {n})")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie in (0, 1) (got {confidence})")
    interval = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


class ClassificationMetrics(Metric):
    """Accumulates the (K, K) confusion matrix of image classification (argmax of (B, K) logits
    against (B,) class indices); ``compute()`` is :func:`classification_summary`. The state is a sum,
    so torchmetrics reduces it across DDP processes."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, classes: Sequence[str] | None = None, **kwargs):
        super().__init__(**kwargs)
        from crackscope.errors import require_positive_int

        self.num_classes = require_positive_int("num_classes", num_classes)
        self.classes = list(classes) if classes is not None else None
        self.add_state(
            "confusion", torch.zeros(self.num_classes, self.num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, logits: Tensor, target: Tensor, *_ignored) -> None:
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise InputError(f"logits must have shape (B, {self.num_classes}), got {tuple(logits.shape)}")
        self.confusion += multiclass_confusion(logits, target, self.num_classes).to(self.confusion.device)

    def compute(self) -> dict:
        return classification_summary(self.confusion, self.classes)
