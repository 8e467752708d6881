"""Train / validation / test splits, written once for every pipeline: a plain shuffled cut
(:func:`split_indices`, wave-field plates), a class-stratified cut (:func:`stratified_split`,
surface and classification images), the harmonics study's stratified re-split with every label
in every part (:func:`stratified_resplit`) and a group-preserving cut (:func:`group_split`, crops or
tiles of one photo kept together); :func:`write_split` records one in a run directory and
:func:`read_split_stems` reads its image stems back. All are
deterministic functions of their seed (or generator)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crackscope.data.images import natural_key
from crackscope.errors import InputError
from crackscope.io import atomic_write_text


def split_indices(indices: np.ndarray, fractions, seed: int) -> dict[str, list[int]]:
    """Shuffle ``indices`` with ``seed`` and cut into train/val/test by ``fractions``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    order = np.asarray(indices)[rng.permutation(len(indices))]
    n = len(order)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {k: sorted(int(i) for i in v) for k, v in parts.items()}


def _split_parts(fractions: Sequence[float]) -> tuple[list[float], tuple[str, ...]]:
    """Checked split fractions and their part names (train/val/test, or train/test for two)."""
    fr = [float(f) for f in fractions]
    if len(fr) not in (2, 3) or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise InputError(f"fractions={tuple(fractions)!r} must be 2 or 3 non-negative numbers summing to 1")
    return fr, (("train", "val", "test") if len(fr) == 3 else ("train", "test"))


def stratified_split(
    labels: Sequence[Any], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[int]]:
    """Indices into ``labels`` split into ``train``/``val``/``test`` (or ``train``/``test`` for two
    fractions), class by class, so each part keeps the class proportions. Each class is shuffled
    with a generator seeded from ``seed`` and its sorted position, and its count is shared out by
    largest remainder. Deterministic for a given seed; parts are disjoint and sorted.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed={seed!r} must be a non-negative integer")
    labels = [lab.item() if isinstance(lab, np.generic) else lab for lab in labels]  # np.int64(3) -> 3
    if any(isinstance(lab, float) for lab in labels):
        raise InputError("targets (class labels) must be class numbers or names, not fractional numbers")
    fr, names = _split_parts(fractions)
    groups: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(repr(lab) if lab is not None else "", []).append(i)
    out: dict[str, list[int]] = {n: [] for n in names}
    for k, key in enumerate(sorted(groups)):
        idx = np.asarray(groups[key], dtype=np.int64)
        rng = np.random.default_rng([int(seed), k])
        idx = idx[rng.permutation(idx.size)]
        exact = np.asarray(fr) * idx.size
        counts = np.floor(exact).astype(int)
        for j in np.argsort(-(exact - counts), kind="stable")[: idx.size - counts.sum()]:
            counts[j] += 1
        start = 0
        for name, c in zip(names, counts):
            out[name].extend(int(v) for v in idx[start : start + c])
            start += c
    return {n: sorted(v) for n, v in out.items()}


def stratified_resplit(
    labels: Sequence[int], fractions: Sequence[float], rng: np.random.Generator, names: Sequence[str] | None = None
) -> dict[str, list[int]]:
    """Indices into integer ``labels`` split into ``train``/``val``/``test``, class by class, with at
    least one sample of every class in every part: the harmonics study's re-split
    (:mod:`crackscope.engine.harmonics_protocol`, one call per re-split r with
    ``rng = default_rng(SeedSequence([seed, r]))``).

    For each label in ascending order, its indices are permuted with ``rng`` (one generator, drawn
    from label after label); the first ``max(1, round(f_train n))`` go to training, the next
    ``max(1, round(f_val n))`` to validation, the rest (at least 1; training gives way) to testing.
    A label with fewer than 3 samples is refused (named by ``names[label]`` if given).

    Why not :func:`stratified_split`: its largest-remainder counts can leave a small class out of
    a part (3 samples at 60/20/20 give 2/1/0), and it seeds a generator per class from an integer.
    The study needs every label in every part (its sensitivity weights come from the validation
    part) and its published numbers (``docs/results/harmonics.md``) were made with exactly this
    rule and these draws, so it is kept as it is.
    """
    labels = np.asarray(labels)
    fr, parts = _split_parts(fractions)
    if len(parts) != 3:
        raise InputError(f"fractions={tuple(fractions)!r} must be 3 numbers (train, validation, test)")
    out: list[list[np.ndarray]] = [[], [], []]
    for lab in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        n = idx.size
        if n < 3:
            name = names[lab] if names is not None and 0 <= lab < len(names) else str(lab)
            raise InputError(
                f"label {name} has only {n} sample{'s' if n != 1 else ''}; a stratified "
                "train/validation/test split needs >= 3 of every label (simulate more samples)"
            )
        n_train = max(1, int(round(fr[0] * n)))
        n_val = max(1, int(round(fr[1] * n)))
        if n - n_train - n_val < 1:
            n_train = n - n_val - 1
        out[0].append(idx[:n_train])
        out[1].append(idx[n_train : n_train + n_val])
        out[2].append(idx[n_train + n_val :])
    return {name: sorted(int(i) for i in (np.concatenate(p) if p else ())) for name, p in zip(parts, out)}


def group_split(
    groups: Sequence[Any], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, list[int]]:
    """Indices into ``groups`` split into ``train``/``val``/``test`` (or ``train``/``test``) so that
    all items of one group land in the same part (crops of one photo, tiles of one image).

    The distinct groups are shuffled by ``seed`` and handed out one by one, each to the part that
    is furthest below its target item count (``fraction * len(groups)``; ties to the earlier
    part), so the parts hit their fractions to within one group. Deterministic; parts are disjoint
    and sorted.
    """
    fr, names = _split_parts(fractions)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(str(g), []).append(i)
    keys = sorted(members, key=natural_key)
    order = np.random.default_rng([int(seed), 104729]).permutation(len(keys))
    target = np.asarray(fr) * len(groups)
    count = np.zeros(len(fr))
    out: dict[str, list[int]] = {n: [] for n in names}
    for k in order:
        items = members[keys[k]]
        part = int(np.argmax(target - count))  # the first of equal deficits
        out[names[part]].extend(items)
        count[part] += len(items)
    return {n: sorted(v) for n, v in out.items()}


def write_split(
    path: str | Path, split: dict[str, list[int]], stems: Sequence[str] | None = None, seed: int | None = None
) -> Path:
    """Record a split as JSON (indices, and stems if given) in a run directory, atomically."""
    record: dict[str, Any] = {"seed": seed, "indices": split}
    if stems is not None:
        record["stems"] = {n: [stems[i] for i in v] for n, v in split.items()}
    return atomic_write_text(path, json.dumps(record, indent=1))


def read_split_stems(path: str | Path) -> dict[str, list[str]]:
    """``{part: [stems]}`` that a split.json written by :func:`write_split` records (``path``: the
    file, or the run directory holding it); :class:`InputError` naming a missing or stem-less file."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / "split.json"
    try:
        stems = json.loads(path.read_text())["stems"]
        return {str(part): [str(s) for s in v] for part, v in stems.items()}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: no readable image stems ({type(err).__name__}: {err})") from None


def stems_only_in(part: str, *runs: str | Path) -> list[str]:
    """The stems in the ``part`` part of every run's split.json and in no other part of any (in the
    first run's order): for ``"test"``, the images none of the runs trained on or chose anything on;
    for ``"val"``, those all of them chose on and none trained on."""
    splits = [read_split_stems(r) for r in runs]
    seen = {s for parts in splits for name, stems in parts.items() if name != part for s in stems}
    wanted = [set(parts.get(part, [])) for parts in splits]
    return [s for s in splits[0].get(part, []) if s not in seen and all(s in t for t in wanted)]


def stems_held_out_by(*runs: str | Path) -> list[str]:
    """The stems in the test part of every run's split.json and in no other part of any: the
    images none of the runs trained on or chose anything on (in the first run's test order)."""
    return stems_only_in("test", *runs)
