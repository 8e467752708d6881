"""The cascade's operating point: the tile classifier's threshold, chosen on validation images.

On every validation image of the two runs' shared split the segmenter runs on all windows
(:func:`crackscope.deploy.cascade.segment_all_tiles`) and the classifier scores every tile. For a
threshold t the cascade flags the tiles scored >= t and keeps its *final region* (the flagged cells
and every pixel whose covering windows all ran: :func:`crackscope.deploy.cascade.screened_windows`).
The operating point is the **highest** t at which that region still holds a required share of

* ``true``: the crack pixels all-tiles segmentation finds (marked, and crack in the ground truth), or
* ``all``: every pixel all-tiles segmentation marks, false alarms included.

What is kept only grows as t falls, so t is found by bisection over the candidates (every tile's
score and 0, 0.001, ..., 1). ``crackscope choose-operating-point`` writes the result to the
classifier's ``operating_point.json``, which ``crackscope inspect-image`` then uses by default
(with the window and overlap it was chosen for). The test images play no part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from crackscope.errors import InputError

__all__ = [
    "pair_study_parser",
    "CRITERIA",
    "DEFAULT_SHARE",
    "RunPairs",
    "ScreenedImage",
    "choose_operating_point",
    "choose_thresholds",
    "operating_points",
    "oracle_windows",
    "screen_images",
    "screened_windows",
    "tile_probabilities",
    "write_operating_point",
]

DEFAULT_SHARE = 0.98
CRITERIA = {
    "all": "every pixel all-tiles segmentation marks, its false alarms included",
    "true": "the crack pixels all-tiles segmentation finds: marked, and cracks in the ground truth "
    "(the issue's criterion as we read it)",
}
CURVE = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # thresholds at which the record lists flagged / recall


class RunPairs:
    """The image and ground-truth mask files of a surface run's data, by split stem
    (``<name>/<stem>`` for a run on several sources), read in each source's layout
    (:func:`crackscope.data.surface.read_pairs`); ``data`` replaces the root of a one-source run."""

    def __init__(self, segmenter_run: str | Path, data: str | Path | None = None):
        from crackscope.data.surface import read_pairs
        from crackscope.engine.runs import load_run

        cfg = load_run(segmenter_run)[0]
        sources = cfg.data.source_list
        if data is not None and len(sources) == 1:
            sources = [(sources[0][0], Path(data), sources[0][2])]
        ds = read_pairs(sources)
        self.files = dict(zip(ds.stems, zip(ds.image_paths, ds.mask_paths)))
        self.names = [n for n, _, _ in sources]

    def __call__(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """(image float32 (C, H, W) in [0, 1], truth bool (H, W)) of ``stem``."""
        from crackscope.data.images import load_mask
        from crackscope.deploy.cascade import read_image

        if stem not in self.files:
            raise InputError(
                f"image {stem!r} of the split is not in the run's data ({', '.join(map(str, self.names))})"
            )
        image, mask = self.files[stem]
        return read_image(image), load_mask(mask)[0] > 0

    def by_source(self, stems) -> dict:
        """``{source name (None for one source): [its stems, in order]}``."""
        out = {n: [] for n in self.names}
        for s in stems:
            out[s.split("/", 1)[0] if None not in out else None].append(s)
        return out


def pair_study_parser(description: str, classifier_help: str | None = None) -> argparse.ArgumentParser:
    """The command line of a study of a crack pair (``benchmarks/``): ``--classifier`` and
    ``--segmenter``, by default the shipped pair ``cracks``; the study adds its own options."""
    from crackscope.shipped import DEFAULT_PAIR, folder

    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", type=Path, default=folder(DEFAULT_PAIR, "classifier"), help=classifier_help)
    p.add_argument("--segmenter", type=Path, default=folder(DEFAULT_PAIR, "segmenter"))
    return p


def survey_tile_bank(part: str, segmenter_run: str | Path, classifier_run: str | Path):
    """(stems, :class:`~crackscope.data.survey_mosaics.TileBank`) of the ``part`` photos of both runs
    (:func:`crackscope.data.splits.stems_only_in`: "test", held out by both, to report; "val", chosen
    on by both and trained on by neither, to choose on), read from the segmenter run's data.
    InputError when the runs share no such photo."""
    from crackscope.data.splits import stems_only_in
    from crackscope.data.survey_mosaics import tile_bank

    stems = stems_only_in(part, segmenter_run, classifier_run)
    if not stems:
        raise InputError(f"{classifier_run} and {segmenter_run} share no {part} photo")
    return stems, tile_bank(RunPairs(segmenter_run), stems)


def tile_probabilities(classifier, image, base) -> np.ndarray:
    """The classifier's crack probability of every tile of ``base``'s grid (``base``: the all-tiles
    result of ``image``)."""
    from crackscope.data.tiles import extract_tiles
    from crackscope.deploy.cascade import to_channels

    tiles = extract_tiles(to_channels(image, classifier.channels), base.grid.origins, base.grid.tile)
    return np.asarray(classifier(tiles))


class ScreenedImage:
    """One validation image: the all-tiles result ``base``, the tile probabilities, the pixels each
    criterion counts and which tiles hold a ground-truth crack."""

    def __init__(self, base, probability: np.ndarray, truth: np.ndarray):
        self.base, self.probability = base, np.asarray(probability)
        self.pixels = {"all": base.mask, "true": base.mask & truth}
        self.truth_tiles = np.array([truth[y0:y1, x0:x1].any() for y0, y1, x0, x1 in base.grid.cells().tolist()])


def screened_windows(base, flagged: np.ndarray):
    """(windows run, final region) of the cascade flagging ``flagged`` on the image of the all-tiles
    result ``base`` (same tiles, windows and scale)."""
    from crackscope.deploy.cascade import screened_windows as screen

    return screen(base.plan, base.scaled_cells(), flagged, base.mask.shape)


def kept_at(images: list[ScreenedImage], threshold: float, key: str = "true") -> tuple[float, float]:
    """(share of the ``key`` criterion's pixels that the cascade's final region keeps, share of the
    windows it runs) over ``images`` when tiles with probability >= ``threshold`` are flagged."""
    kept = total = run = windows = 0
    for i in images:
        chosen, region = screened_windows(i.base, i.probability >= threshold)
        kept += int((i.pixels[key] & region).sum())
        total += int(i.pixels[key].sum())
        run += len(chosen)
        windows += len(i.base.plan)
    return kept / max(total, 1), run / max(windows, 1)


def operating_points(images: list[ScreenedImage], share: float) -> dict:
    """For each of :data:`CRITERIA`, the highest threshold at which the cascade's final region keeps
    ``share`` of the criterion's pixels over ``images`` (segmented and classified already), with
    what it keeps, flags and runs there; the ``curve`` lists the flagged fraction and tile recall at
    a few fixed thresholds. When no candidate keeps ``share`` (no pixel to keep), the lowest
    candidate, 0: every tile flagged."""
    p = np.concatenate([i.probability for i in images])
    gt = np.concatenate([i.truth_tiles for i in images]).astype(bool)
    candidates = np.unique(np.concatenate([p, np.linspace(0, 1, 1001)]))
    out = {
        "chosen_on": "validation",
        "required_share": share,
        "n_images": len(images),
        "n_tiles": int(p.size),
        "crack_tile_fraction": float(gt.mean()),
        "kept": "the cascade's final region (flagged cells and every pixel whose windows all ran)",
    }
    for key in CRITERIA:
        lo, hi = 0, len(candidates) - 1  # kept at candidates[lo] >= share (flag everything) unless nothing is
        if kept_at(images, candidates[hi], key)[0] >= share:
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if kept_at(images, candidates[mid], key)[0] >= share else (lo, mid)
        t = float(candidates[lo])
        got, windows = kept_at(images, t, key)
        out[key] = {
            "threshold": t,
            "share": got,
            "flagged_fraction": float((p >= t).mean()),
            "windows_fraction": windows,
            "tile_recall": float(((p >= t) & gt).sum() / max(gt.sum(), 1)),
        }
    out["curve"] = [
        {
            "threshold": float(c),
            "flagged_fraction": float((p >= c).mean()),
            "tile_recall": float(((p >= c) & gt).sum() / max(gt.sum(), 1)),
        }
        for c in CURVE
    ]
    return out


def screen_images(
    classifier, segmenter, pairs, stems, *, tile: int, window: int | None = None, overlap: float = 0.0
) -> list[ScreenedImage]:
    """Every image of ``stems`` (read by ``pairs``) segmented on all windows and its tiles scored."""
    from crackscope.deploy.cascade import segment_all_tiles
    from crackscope.progress import progress_bar

    images = []
    for stem in progress_bar(stems, desc="images segmented and screened"):
        image, truth = pairs(stem)
        base = segment_all_tiles(image, segmenter, tile=tile, overlap=overlap, window=window)
        images.append(ScreenedImage(base, tile_probabilities(classifier, image, base), truth))
    return images


def choose_thresholds(
    classifier, segmenter, pairs, stems, share: float, *, tile: int, window: int | None = None, overlap: float = 0.0
) -> dict:
    """:func:`operating_points` of the images ``stems`` (read by ``pairs``, a :class:`RunPairs`),
    segmented on ``window`` x ``window`` windows overlapping by ``overlap`` (``window`` None: the
    segmenter's training window, else ``tile``) and scored on ``tile`` x ``tile`` tiles."""
    images = screen_images(classifier, segmenter, pairs, stems, tile=tile, window=window, overlap=overlap)
    return operating_points(images, share)


def oracle_windows(bases, wanted, share: float) -> dict:
    """What a perfect screen would run: tiles flagged in order of how many ``wanted`` pixels (per
    result in ``bases``) their cells hold, the fewest that keep ``share`` of them in the final region;
    returns its flagged and windows fractions (the speed-up bound is 1 / windows fraction)."""
    counts = [
        np.array([w[y0:y1, x0:x1].sum() for y0, y1, x0, x1 in b.grid.cells().tolist()]) for b, w in zip(bases, wanted)
    ]
    order = np.argsort(-np.concatenate(counts), kind="stable")
    offsets = np.cumsum([0] + [len(c) for c in counts])
    total = max(sum(int(w.sum()) for w in wanted), 1)

    def run(k):
        flags = np.zeros(offsets[-1], bool)
        flags[order[:k]] = True
        n = windows = 0
        for i, (b, w) in enumerate(zip(bases, wanted)):
            chosen, region = screened_windows(b, flags[offsets[i] : offsets[i + 1]])
            n += int((w & region).sum())
            windows += len(chosen)
        return n / total, windows

    lo, hi = 0, int(offsets[-1])  # run(hi) keeps everything
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if run(mid)[0] >= share else (mid, hi)
    kept, windows = run(hi)
    return {
        "flagged_fraction": hi / offsets[-1],
        "windows_fraction": windows / sum(len(b.plan) for b in bases),
        "kept": kept,
    }


def _check_share(target_share, margin) -> float:
    for name, value in (("--target-share", target_share), ("--margin", margin)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
            raise InputError(f"{name} must be a number (got {value!r})")
    if not 0.0 < target_share <= 1.0:
        raise InputError(f"--target-share {target_share:g} must be in (0, 1]")
    if not 0.0 < target_share + margin <= 1.0:
        raise InputError(
            f"--margin {margin:g}: the share required on validation, --target-share + --margin = "
            f"{target_share + margin:g}, must be in (0, 1]"
        )
    return float(target_share + margin)


def choose_operating_point(
    classifier_run: str | Path,
    segmenter_run: str | Path,
    *,
    data: str | Path | None = None,
    target_share: float = DEFAULT_SHARE,
    margin: float = 0.0,
    criterion: str = "true",
    tile: int | None = None,
    window: int | None = None,
    overlap: float = 0.0,
    segmenter_name: str | None = None,
    classifier=None,
    segmenter=None,
    pairs: RunPairs | None = None,
    survey: int | None = None,
    survey_side: int = 1024,
) -> dict:
    """The operating point of the tile classifier ``classifier_run`` for the segmenter
    ``segmenter_run`` on their shared validation images (the two runs must record the same
    validation and test images), as ``operating_point.json`` holds it: both criteria's points
    (:func:`operating_points`, required share ``target_share + margin``), ``threshold`` the one of
    ``criterion`` (recorded as ``default``), and the ``tile``, ``window`` and ``overlap`` it was
    chosen for (``tile``: the classifier's, else 64; ``window``: the segmenter's training window,
    else the tile side) and ``segmenter`` (``segmenter_name``, default the path as given).

    ``survey``: choose instead on that many survey-like ``survey_side``-px square images made of the validation
    photos' 128-px tiles, 5-15 % of them crack tiles and the rest crack-free surface
    (:func:`crackscope.data.survey_mosaics.survey_mosaics`, seed 0), as an inspection survey sees
    it; recorded as ``chosen_on``.

    ``data``: the dataset folder of a one-source segmenter run (default: its config's). Already
    loaded ``classifier`` / ``segmenter`` / ``pairs`` may be passed to skip loading them. Nothing is
    written (:func:`write_operating_point`). Bad input raises :class:`InputError` naming it."""
    from crackscope.data.splits import read_split_stems
    from crackscope.deploy.cascade import DEFAULT_TILE, load_classifier, load_segmenter
    from crackscope.deploy.tiling import overlap_pixels
    from crackscope.errors import require_positive_int

    share = _check_share(target_share, margin)
    if criterion not in CRITERIA:
        raise InputError(f"--criterion {criterion!r} is not one of {', '.join(sorted(CRITERIA))}")
    classifier_run, segmenter_run = Path(classifier_run), Path(segmenter_run)
    classifier = classifier if classifier is not None else load_classifier(classifier_run, role="classifier")
    segmenter = segmenter if segmenter is not None else load_segmenter(segmenter_run)
    tile = require_positive_int("--tile", tile if tile is not None else (classifier.tile or DEFAULT_TILE))
    if window is not None:
        require_positive_int("--window", window)
    overlap_pixels(window or tile, overlap)  # an InputError naming --overlap outside [0, 0.5]
    cls_stems, seg_stems = read_split_stems(classifier_run), read_split_stems(segmenter_run)
    for part in ("val", "test"):
        if cls_stems.get(part) != seg_stems.get(part):
            raise InputError(
                f"{classifier_run} and {segmenter_run} do not share their {part} images; "
                "train both with the same seed and split"
            )
    if not cls_stems.get("val"):
        raise InputError(f"{classifier_run}/split.json lists no validation images to choose on")
    if data is not None and not Path(data).is_dir():
        raise InputError(f"--data {data}: no such folder")
    pairs = pairs if pairs is not None else RunPairs(segmenter_run, data)

    read, stems = pairs, cls_stems["val"]
    if survey is not None:
        from crackscope.data.survey_mosaics import survey_mosaics, tile_bank

        made = survey_mosaics(tile_bank(pairs, stems), require_positive_int("--survey", survey), side=survey_side)
        mosaics = {f"survey-{k}": (image, truth) for k, (image, truth, _) in enumerate(made)}
        read, stems = mosaics.__getitem__, list(mosaics)
    images = screen_images(classifier, segmenter, read, stems, tile=tile, window=window, overlap=overlap)
    point = operating_points(images, share)
    if survey is not None:
        point["chosen_on"] = f"survey-like images: {survey} mosaics of {survey_side} px from the validation photos"
    point.update(
        threshold=point[criterion]["threshold"],
        default=criterion,
        target_share=target_share,
        margin=margin,
        tile=tile,
        window=int(images[0].base.plan.window),  # the windows it was chosen for: inspect-image's defaults
        overlap=overlap,
        segmenter=segmenter_name if segmenter_name is not None else str(segmenter_run),
    )
    if data is not None:
        point["data"] = str(data)
    return point


def write_operating_point(classifier_run: str | Path, point: dict) -> Path:
    """CLASSIFIER/operating_point.json, written atomically (a reader never sees half of it) by the
    one writer of the file, :func:`crackscope.engine.runs.save_operating_point`."""
    from crackscope.engine.runs import OPERATING_POINT_FILE, save_operating_point

    save_operating_point(classifier_run, point)
    return Path(classifier_run) / OPERATING_POINT_FILE


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(TP, FP, FN) crack pixels of a boolean prediction against a boolean ground truth."""
    return np.array([(pred & truth).sum(), (pred & ~truth).sum(), (~pred & truth).sum()], dtype=np.int64)


def pixel_scores(counts: np.ndarray) -> dict:
    """Precision, recall, F1 and IoU of pooled (TP, FP, FN) counts (0 where a denominator is 0)."""
    tp, fp, fn = (int(v) for v in counts)
    return {
        "precision": tp / max(tp + fp, 1),
        "recall": tp / max(tp + fn, 1),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "iou": tp / max(tp + fp + fn, 1),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }
