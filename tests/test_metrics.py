"""Metrics: hand-worked confusion counts, micro vs per-sample, size classes, torchmetrics agreement."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_f1_score,
    binary_jaccard_index,
    binary_precision,
    binary_recall,
    binary_stat_scores,
)

from crackscope import metrics
from crackscope.errors import InputError
from crackscope.metrics import SegmentationMetrics, by_crack_size, confusion_counts, summarize

NAMES = ("dsc", "accuracy", "iou", "precision", "recall", "iou_background", "miou")

TARGET_3x3 = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float32)
PRED_3x3 = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.float32)
# TP: (0,0), (1,1) -> 2; FP: (1,0), (2,2) -> 2; FN: (0,1) -> 1; TN: 4


def test_hand_worked_3x3_confusion():
    logits = (PRED_3x3 * 2 - 1)[None, None] * 3.0
    counts = confusion_counts(logits, TARGET_3x3[None, None])
    assert counts.tolist() == [[2, 2, 1, 4]]
    assert counts.dtype == torch.int64
    s = summarize(counts)
    assert s["n_samples"] == 1
    assert s["dsc"] == pytest.approx(4 / 7)
    assert s["iou"] == pytest.approx(2 / 5)
    assert s["accuracy"] == pytest.approx(6 / 9)
    assert s["precision"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["iou_background"] == pytest.approx(4 / 7)  # TN / (TN + FP + FN)
    assert s["miou"] == pytest.approx((2 / 5 + 4 / 7) / 2)
    for name in NAMES:  # one sample: per-sample mean = micro
        assert s[f"{name}_per_sample"] == pytest.approx(s[name])


def test_probabilities_threshold_and_target_forms():
    probs = (PRED_3x3 * 0.8 + 0.1)[None]  # 0.9 / 0.1, no channel axis
    assert confusion_counts(probs, TARGET_3x3[None], from_logits=False).tolist() == [[2, 2, 1, 4]]
    assert confusion_counts(probs[:, None], TARGET_3x3[None].bool(), from_logits=False).tolist() == [[2, 2, 1, 4]]
    assert confusion_counts(probs[:, None], TARGET_3x3[None].to(torch.uint8), from_logits=False).tolist() == [
        [2, 2, 1, 4]
    ]
    # p > threshold is foreground; p == threshold is not
    half = torch.full((1, 1, 3, 3), 0.5)
    assert confusion_counts(half, TARGET_3x3[None, None], from_logits=False).tolist() == [[0, 0, 3, 6]]
    assert confusion_counts(probs, TARGET_3x3[None], threshold=0.95, from_logits=False).tolist() == [[0, 0, 3, 6]]


def test_multiclass_logits_use_argmax_and_nonzero_foreground():
    labels = torch.tensor([[[0, 2, 1], [0, 0, 0], [1, 0, 2]]])
    target = torch.tensor([[[0, 1, 1], [2, 0, 0], [0, 0, 2]]])
    logits = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    # foreground = class != 0: pred fg at (0,1),(0,2),(2,0),(2,2); true fg at (0,1),(0,2),(1,0),(2,2)
    assert confusion_counts(logits, target).tolist() == [[3, 1, 1, 4]]


def test_zero_denominator_conventions():
    s = summarize(torch.tensor([[0, 0, 0, 9]]))  # empty vs empty: perfect
    assert all(s[n] == 1.0 and s[f"{n}_per_sample"] == 1.0 for n in NAMES)
    s = summarize(torch.tensor([[0, 0, 3, 6]]))  # crack missed, nothing predicted
    assert (s["dsc"], s["iou"], s["precision"], s["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["accuracy"] == pytest.approx(6 / 9)
    s = summarize(torch.tensor([[0, 2, 0, 7]]))  # false alarm on an empty plate
    assert (s["dsc"], s["iou"], s["precision"], s["recall"]) == (0.0, 0.0, 0.0, 0.0)
    s = summarize(torch.zeros(0, 4, dtype=torch.long))
    assert s["n_samples"] == 0 and all(s[n] is None and s[f"{n}_per_sample"] is None for n in NAMES)


def test_micro_and_per_sample_differ_by_design():
    counts = torch.tensor(
        [
            [10, 0, 0, 90],  # large crack, perfect
            [0, 0, 2, 98],  # small crack, missed
            [0, 0, 0, 100],  # no crack, none predicted
        ]
    )
    s = summarize(counts)
    assert s["dsc"] == pytest.approx(20 / 22)
    assert s["dsc_per_sample"] == pytest.approx((1 + 0 + 1) / 3)
    assert s["iou"] == pytest.approx(10 / 12)
    assert s["recall"] == pytest.approx(10 / 12)
    assert s["recall_per_sample"] == pytest.approx(2 / 3)
    assert s["precision"] == 1.0
    assert s["precision_per_sample"] == pytest.approx(2 / 3)
    assert s["accuracy"] == pytest.approx(298 / 300)
    assert s["accuracy_per_sample"] == pytest.approx((1 + 0.98 + 1) / 3)


def test_by_crack_size_grouping():
    lengths = [0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 4.2]
    counts = torch.tensor(
        [[0, 0, 0, 10], [0, 1, 1, 8], [1, 0, 1, 8], [2, 0, 0, 8], [3, 1, 0, 6], [3, 0, 1, 6], [5, 0, 0, 5]]
    )
    out = by_crack_size(counts, lengths)
    assert list(out) == [">0", ">1", ">2", ">3", ">4"]
    expected = {">0": [1, 2, 3, 4, 5, 6], ">1": [3, 4, 5, 6], ">2": [4, 5, 6], ">3": [6], ">4": [6]}
    for key, idx in expected.items():
        assert out[key] == summarize(counts[idx])
        assert out[key]["n_samples"] == len(idx)
    assert out[">1"]["dsc"] == pytest.approx(2 * 13 / (2 * 13 + 1 + 1))
    assert out[">4"]["dsc"] == 1.0


def test_by_crack_size_empty_groups_and_custom_bounds():
    counts = torch.tensor([[1, 0, 0, 3], [0, 0, 1, 3]])
    out = by_crack_size(counts, torch.tensor([0.4, 0.7]), bounds=(0.5, 10))
    assert list(out) == [">0.5", ">10"]
    assert out[">0.5"]["n_samples"] == 1
    assert out[">10"]["n_samples"] == 0 and out[">10"]["dsc"] is None and out[">10"]["iou_per_sample"] is None
    with pytest.raises(InputError, match="3 entries for 2 samples"):
        by_crack_size(counts, [1.0, 2.0, 3.0])


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        summarize(torch.zeros(3, 5))
    with pytest.raises(InputError, match="does not match"):
        confusion_counts(torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 3, 4))
    with pytest.raises(InputError, match="threshold"):
        confusion_counts(torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 3, 3), threshold=1.5)


def random_batch(seed, b=6, hw=12, p_crack=0.2):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1, hw, hw, generator=g) * 2
    target = (torch.rand(b, 1, hw, hw, generator=g) < p_crack).float()
    return logits, target


def test_agrees_with_torchmetrics_on_random_data():
    logits, target = random_batch(0)
    probs = torch.sigmoid(logits)
    s = summarize(confusion_counts(probs, target, from_logits=False))
    t = target.long()
    assert s["dsc"] == pytest.approx(binary_f1_score(probs, t).item(), abs=1e-6)
    assert s["iou"] == pytest.approx(binary_jaccard_index(probs, t).item(), abs=1e-6)
    assert s["accuracy"] == pytest.approx(binary_accuracy(probs, t).item(), abs=1e-6)
    assert s["precision"] == pytest.approx(binary_precision(probs, t).item(), abs=1e-6)
    assert s["recall"] == pytest.approx(binary_recall(probs, t).item(), abs=1e-6)
    # logits path: torchmetrics applies the sigmoid itself to values outside [0, 1]
    assert summarize(confusion_counts(logits, target))["dsc"] == pytest.approx(
        binary_f1_score(logits, t).item(), abs=1e-6
    )
    # per-sample counts and means (no empty samples here)
    tm = binary_stat_scores(probs, t, multidim_average="samplewise")  # tp, fp, tn, fn, support
    ours = confusion_counts(probs, target, from_logits=False)
    assert torch.equal(ours, tm[:, [0, 1, 3, 2]])
    f1_samples = binary_f1_score(probs, t, multidim_average="samplewise")
    assert s["dsc_per_sample"] == pytest.approx(f1_samples.double().mean().item(), abs=1e-6)


def test_accumulating_two_batches_equals_one_pass():
    (l1, t1), (l2, t2) = random_batch(1, b=4), random_batch(2, b=5)
    len1, len2 = torch.tensor([0.0, 1.2, 3.5, 0.8]), torch.tensor([2.2, 4.5, 0.0, 1.0, 3.1])
    acc = SegmentationMetrics()
    acc.update(l1, t1, max_crack_length_um=len1)
    acc.update(l2, t2, max_crack_length_um=len2)
    out = acc.compute()

    one = SegmentationMetrics()
    one.update(torch.cat([l1, l2]), torch.cat([t1, t2]), max_crack_length_um=torch.cat([len1, len2]))
    ref = one.compute()

    counts = torch.cat([confusion_counts(l1, t1), confusion_counts(l2, t2)])
    plain = summarize(counts)
    plain_sizes = by_crack_size(counts, torch.cat([len1, len2]))
    for result in (out, ref):
        assert set(result) == set(plain) | {"by_crack_size"}
        for k, v in plain.items():
            assert result[k] == pytest.approx(v, abs=1e-12)
        for key, group in plain_sizes.items():
            for k, v in group.items():
                assert result["by_crack_size"][key][k] == pytest.approx(v, abs=1e-12)

    acc.reset()
    acc.update(l1, t1)
    out = acc.compute()
    assert "by_crack_size" not in out
    assert out["dsc"] == pytest.approx(summarize(confusion_counts(l1, t1))["dsc"], abs=1e-12)


def test_accumulator_empty_size_group_and_mixed_lengths():
    l1, t1 = random_batch(3, b=2)
    acc = SegmentationMetrics(bounds=(0, 100))
    acc.update(l1, t1, max_crack_length_um=[0.5, 2.0])
    sizes = acc.compute()["by_crack_size"]
    assert sizes[">0"]["n_samples"] == 2
    assert sizes[">100"] == {"n_samples": 0, **{k: None for n in NAMES for k in (n, f"{n}_per_sample")}}
    acc.update(l1, t1)
    with pytest.raises(InputError, match="max_crack_length_um"):
        acc.compute()


def test_accumulator_forward_returns_batch_value_and_accumulates():
    (l1, t1), (l2, t2) = random_batch(6, b=3), random_batch(7, b=3)
    acc = SegmentationMetrics()
    batch = acc(l1, t1, max_crack_length_um=[0.5, 1.5, 2.5])
    assert batch["dsc"] == pytest.approx(summarize(confusion_counts(l1, t1))["dsc"], abs=1e-12)
    assert batch["by_crack_size"][">1"]["n_samples"] == 2
    acc(l2, t2, max_crack_length_um=[0.0, 0.0, 5.0])
    both = summarize(torch.cat([confusion_counts(l1, t1), confusion_counts(l2, t2)]))
    assert acc.compute()["dsc"] == pytest.approx(both["dsc"], abs=1e-12)


def test_accumulator_threshold_and_probabilities():
    logits, target = random_batch(4)
    probs = torch.sigmoid(logits)
    acc = SegmentationMetrics(threshold=0.7, from_logits=False)
    acc.update(probs, target)
    ref = summarize(confusion_counts(probs, target, threshold=0.7, from_logits=False))
    assert acc.compute()["dsc"] == pytest.approx(ref["dsc"], abs=1e-12)


def test_multiclass_iou_hand_example():
    target = torch.tensor([[0, 0, 1], [1, 2, 2]])
    pred = torch.tensor([[0, 1, 1], [1, 2, 0]])
    out = metrics.multiclass_iou(pred, target, 3)
    # rows = true class, columns = predicted; IoU_c = CM_cc / (row_c + col_c - CM_cc)
    cm = metrics.multiclass_confusion(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert out["iou_per_class"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert out["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert out["pixel_accuracy"] == pytest.approx(4 / 6)


def test_multiclass_iou_binary_miou_and_absent_class():
    pred = (PRED_3x3 > 0.5).long()[None]
    target = TARGET_3x3.long()[None]
    out = metrics.multiclass_iou(pred, target, 2)
    fg = summarize(torch.tensor([[2, 2, 1, 4]]))["iou"]
    bg = 4 / (4 + 1 + 2)  # TN / (TN + FN + FP)
    assert out["iou_per_class"] == pytest.approx([bg, fg])
    assert out["miou"] == pytest.approx((bg + fg) / 2)
    absent = metrics.multiclass_iou(pred, target, 3)
    assert math.isnan(absent["iou_per_class"][2])
    assert absent["miou"] == pytest.approx((bg + fg) / 2)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        metrics.multiclass_iou(torch.full((1, 3, 3), 2), target, 2)


def test_multiclass_iou_agrees_with_torchmetrics():
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(4, 5, 10, 10, generator=g)
    target = torch.randint(0, 5, (4, 10, 10), generator=g)
    out = metrics.multiclass_iou(scores, target, 5)  # scores -> argmax
    tm_iou = MulticlassJaccardIndex(num_classes=5, average=None)(scores, target)
    assert out["iou_per_class"] == pytest.approx(tm_iou.tolist(), abs=1e-6)
    assert out["miou"] == pytest.approx(tm_iou.mean().item(), abs=1e-6)
    tm_acc = MulticlassAccuracy(num_classes=5, average="micro")(scores, target)
    assert out["pixel_accuracy"] == pytest.approx(tm_acc.item(), abs=1e-6)


def test_threshold_sweep_hand_worked():
    """p = (0.2, 0.4, 0.7, 0.9) against y = (0, 1, 1, 0): DSC 4/6, 4/5, 2/4, 0 at t = 0.1, 0.3, 0.5, 0.8."""
    from crackscope.metrics import best_threshold, sweep_counts

    p = torch.tensor([[0.2, 0.4, 0.7, 0.9]])
    y = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    grid = (0.1, 0.3, 0.5, 0.8)
    counts = sweep_counts(p, y, grid, from_logits=False)
    assert counts.tolist() == [[2, 2, 0], [2, 1, 0], [1, 1, 1], [0, 1, 2]]
    assert best_threshold(counts, grid) == {"dsc_best": pytest.approx(0.8), "threshold_best": 0.3}
    # ties go to the lowest threshold; empty predicted empty scores 1 as everywhere in the module
    tie = torch.tensor([[1, 1, 0], [1, 1, 0]])
    assert best_threshold(tie, (0.2, 0.6))["threshold_best"] == 0.2
    assert best_threshold(torch.tensor([[0, 3, 0], [0, 0, 0]]), (0.2, 0.6)) == {"dsc_best": 1.0, "threshold_best": 0.6}
    with pytest.raises(InputError, match="increasing"):
        SegmentationMetrics(sweep=(0.5, 0.3))


def test_accumulated_sweep_equals_plain_metrics_at_each_threshold():
    from crackscope.metrics import THRESHOLD_GRID

    m = SegmentationMetrics(sweep=THRESHOLD_GRID)
    batches = [random_batch(s) for s in (1, 2)]
    for logits, target in batches:
        m.update(logits, target)
    out = m.compute()
    logits = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    dsc = {t: summarize(confusion_counts(logits, target, threshold=t))["dsc"] for t in THRESHOLD_GRID}
    best = max(THRESHOLD_GRID, key=lambda t: (dsc[t], -t))
    assert out["threshold_best"] == best and out["dsc_best"] == pytest.approx(dsc[best])
    assert out["dsc"] == pytest.approx(dsc[0.5])  # the fixed-threshold keys are unchanged


# ---- ODS / OIS F-measure with a pixel tolerance (crack detection) ---------------------------------
def test_f_measure_shifted_line_needs_a_tolerance():
    """A 1-px vertical ground-truth line (column 3 of 7x7) and a prediction one column to the right:
    no pixel overlaps (F = 0 at 0 px), every pixel is 1 px from the other line (F = 1 at >= 1 px)."""
    from crackscope.metrics import crack_f_measures

    gt = torch.zeros(7, 7)
    gt[:, 3] = 1
    prob = torch.zeros(7, 7)
    prob[:, 4] = 0.9
    for t, f in ((0, 0.0), (1, 1.0), (2, 1.0), (3, 1.0)):
        r = crack_f_measures([prob], [gt], tolerance_px=t)
        assert r["ods_f"] == pytest.approx(f) and r["ois_f"] == pytest.approx(f), t
        assert (r["ods_precision"], r["ods_recall"]) == (pytest.approx(f), pytest.approx(f))
    # the lowest threshold of the best F (ties): every threshold < 0.9 scores the same
    assert crack_f_measures([prob], [gt], tolerance_px=1)["ods_threshold"] == 0.01


def test_f_measure_tolerance_region_is_a_euclidean_disk():
    """One true pixel at (3, 3), one predicted pixel at a distance 1, sqrt 2, 2 or sqrt 5: a match
    exactly when the distance is <= the tolerance (a disk, not a square: (4, 4) misses at 1 px)."""
    from crackscope.metrics import crack_f_measures

    gt = torch.zeros(7, 7)
    gt[3, 3] = 1
    for (y, x), dist in (((3, 4), 1.0), ((4, 4), 2**0.5), ((5, 3), 2.0), ((5, 4), 5**0.5)):
        prob = torch.zeros(7, 7)
        prob[y, x] = 0.8
        for t in (0, 1, 1.5, 2, 3):
            assert crack_f_measures([prob], [gt], tolerance_px=t)["ods_f"] == (1.0 if dist <= t else 0.0), (y, x, t)


def test_f_measure_thick_prediction_counts():
    """Ground truth: the 1-px row 2 of a 5x6 image (6 pixels); prediction: rows 1-3 (18 pixels).
    At 0 px: P = 6/18, R = 6/6, F = 2 (1/3)(1) / (4/3) = 1/2. At 1 px every predicted pixel is
    within 1 px of row 2: P = R = 1, F = 1 (no one-to-one matching, as in CrackForest)."""
    from crackscope.metrics import crack_f_counts, crack_f_measures

    gt = torch.zeros(5, 6)
    gt[2] = 1
    prob = torch.zeros(5, 6)
    prob[1:4] = 0.7
    grid = (0.5,)
    # columns: matched predicted, predicted, matched true, true
    assert crack_f_counts(prob, gt, grid, 0).tolist() == [[6, 18, 6, 6]]
    assert crack_f_counts(prob, gt, grid, 1).tolist() == [[18, 18, 6, 6]]
    assert crack_f_measures([prob], [gt], grid, 0)["ods_f"] == pytest.approx(0.5)
    assert crack_f_measures([prob], [gt], grid, 1)["ods_f"] == pytest.approx(1.0)


def test_ois_above_ods_when_the_best_thresholds_differ():
    """Thresholds 0.25, 0.5, 0.75 at tolerance 0; images of different sizes.

    Image A (1x4): p = (0.6, 0.6, 0.4, 0.4), crack = the first two pixels.
      t = 0.25: 4 predicted, 2 right: P = 1/2, R = 1, F = 2/3;  t = 0.5: P = R = 1, F = 1;
      t = 0.75: nothing predicted, F = 0.  Best: F = 1 at 0.5.
    Image B (2x3): p = (0.3, 0.3, 0.1 / 0.1, 0.1, 0.1), crack = the first two pixels.
      t = 0.25: P = R = 1, F = 1;  t = 0.5 and 0.75: nothing predicted, F = 0.  Best: F = 1 at 0.25.
    OIS = (1 + 1) / 2 = 1.
    ODS, counts summed: t = 0.25: 6 predicted, 4 right, 4 of 4 found: P = 2/3, R = 1, F = 4/5;
      t = 0.5: 2 predicted, 2 right, 2 of 4 found: P = 1, R = 1/2, F = 2/3;  t = 0.75: F = 0.
      ODS = 0.8 at 0.25 (P = 2/3, R = 1).
    """
    from crackscope.metrics import crack_f_measures

    probs = [torch.tensor([[0.6, 0.6, 0.4, 0.4]]), torch.tensor([[0.3, 0.3, 0.1], [0.1, 0.1, 0.1]])]
    masks = [torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 1, 0], [0, 0, 0]])]
    r = crack_f_measures(probs, masks, thresholds=(0.25, 0.5, 0.75), tolerance_px=0)
    assert r == {
        "n_images": 2,
        "ods_f": pytest.approx(0.8),
        "ods_threshold": 0.25,
        "ods_precision": pytest.approx(2 / 3),
        "ods_recall": pytest.approx(1.0),
        "ois_f": pytest.approx(1.0),
    }
    # numpy maps give the same
    assert crack_f_measures([p.numpy() for p in probs], [m.numpy() for m in masks], (0.25, 0.5, 0.75)) == r


def test_f_measure_empty_masks():
    """No crack in the image: F = 1 at a threshold that predicts nothing (a correct "no crack"),
    0 where anything is predicted; a crack that is never predicted scores 0."""
    from crackscope.metrics import crack_f_measures

    grid = (0.25, 0.5, 0.75)
    empty = torch.zeros(4, 4)
    low, high = torch.full((4, 4), 0.1), torch.full((4, 4), 0.9)
    assert crack_f_measures([low], [empty], grid)["ods_f"] == 1.0
    r = crack_f_measures([torch.full((4, 4), 0.6)], [empty], grid, tolerance_px=2)
    assert (r["ods_f"], r["ods_threshold"], r["ois_f"]) == (1.0, 0.75, 1.0)  # nothing above 0.75
    r = crack_f_measures([high], [empty], grid, tolerance_px=2)
    assert (r["ods_f"], r["ods_threshold"], r["ods_precision"], r["ois_f"]) == (0.0, 0.25, 0.0, 0.0)
    crack = torch.zeros(4, 4)
    crack[1, 1] = 1
    assert crack_f_measures([low], [crack], grid, tolerance_px=2)["ods_f"] == 0.0
    # an empty image next to a cracked one: ODS counts only its false positives, OIS averages its F
    # A: crack (1, 1) predicted exactly (0.9); B: no crack, 0.6 everywhere (16 false positives up
    # to 0.5). t = 0.25 / 0.5: P = 1/17, R = 1, F = 2/18; t = 0.75: P = R = 1, F = 1 -> ODS 1 at
    # 0.75. OIS: A best 1, B best 1 (at 0.75) -> 1.
    a = torch.zeros(4, 4)
    a[1, 1] = 0.9
    r = crack_f_measures([a, torch.full((4, 4), 0.6)], [crack, empty], grid)
    assert (r["ods_f"], r["ods_threshold"], r["ois_f"]) == (1.0, 0.75, 1.0)
    # no images at all
    assert crack_f_measures([], [], grid) == dict.fromkeys(
        ("n_images", "ods_f", "ods_threshold", "ods_precision", "ods_recall", "ois_f")
    ) | {"n_images": 0}


def test_f_measure_at_zero_tolerance_is_the_best_micro_dsc_of_the_sweep():
    """At 0 px the F of the summed counts is the micro DSC: ODS = best_threshold's dsc_best."""
    from crackscope.metrics import THRESHOLD_GRID, best_threshold, crack_f_measures, sweep_counts

    logits, target = random_batch(3)
    probs = torch.sigmoid(logits)[:, 0]
    r = crack_f_measures(probs, target[:, 0], THRESHOLD_GRID, tolerance_px=0)
    best = best_threshold(sweep_counts(probs, target[:, 0], THRESHOLD_GRID, from_logits=False), THRESHOLD_GRID)
    assert r["ods_f"] == pytest.approx(best["dsc_best"]) and r["ods_threshold"] == best["threshold_best"]
    # each image's best F is at least its F at the dataset's threshold, so OIS >= their mean
    at_ods = [crack_f_measures([p], [y], (r["ods_threshold"],))["ods_f"] for p, y in zip(probs, target[:, 0])]
    assert r["ois_f"] >= sum(at_ods) / len(at_ods)
    assert crack_f_measures(probs, target[:, 0], THRESHOLD_GRID, tolerance_px=2)["ods_f"] >= r["ods_f"]


def test_f_measure_bad_inputs_raise_input_error():
    from crackscope.metrics import crack_f_measures

    p, m = torch.zeros(4, 4), torch.zeros(4, 4)
    with pytest.raises(InputError, match="tolerance_px"):
        crack_f_measures([p], [m], tolerance_px=-1)
    with pytest.raises(InputError, match="differ in size"):
        crack_f_measures([p], [torch.zeros(4, 5)])
    with pytest.raises(InputError, match="2 probability maps for 1 masks"):
        crack_f_measures([p, p], [m])
    with pytest.raises(InputError, match="increasing"):
        crack_f_measures([p], [m], thresholds=(0.5, 0.2))
    with pytest.raises(InputError, match="one \\(H, W\\) map"):
        crack_f_measures([torch.zeros(2, 4, 4)], [torch.zeros(2, 4, 4)])


def test_cell_oracle_is_hand_worked():
    """One crack pixel at row 5, column 9 of a 36 x 36 mask lies in the sensor cell (1, 2) of the
    9 x 9 grid: the oracle marks rows 4-7, columns 8-11, and scores DSC 2 * 1 / (2 * 1 + 15)."""
    from crackscope.metrics import cell_oracle, confusion_counts, summarize

    mask = torch.zeros(2, 36, 36)
    mask[0, 5, 9] = 1
    oracle = cell_oracle(mask, 9)
    expected = torch.zeros(2, 36, 36, dtype=torch.bool)
    expected[0, 4:8, 8:12] = True
    assert torch.equal(oracle, expected)
    counts = confusion_counts(oracle[:1].float(), mask[:1], from_logits=False)
    assert summarize(counts)["dsc"] == pytest.approx(2 / 17)
    assert cell_oracle(torch.zeros(1, 35, 35), 9) is None  # 35 pixels do not split into 9 cells


# ---- confusion_counts is torchmetrics' per-sample stat scores: equal to the counts written out ----


def _counts_by_hand(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """The reference: per-sample TP, FP, FN, TN of (B, N) boolean maps, each a sum of one cell."""
    return torch.stack(
        [(pred & true).sum(1), (pred & ~true).sum(1), (~pred & true).sum(1), (~pred & ~true).sum(1)], 1
    ).long()


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_confusion_counts_equal_the_cell_sums_written_out(batch):
    g = torch.Generator().manual_seed(batch)
    logits = torch.randn(batch, 1, 7, 9, generator=g) * 3
    target = (torch.rand(batch, 1, 7, 9, generator=g) > 0.7).float()
    target[0] = 0  # an empty mask ...
    logits[-1] = -5.0  # ... and an empty prediction (the same sample when batch == 1: empty vs empty)
    for threshold in (0.05, 0.3, 0.5, 0.95):
        pred = torch.sigmoid(logits.double()).reshape(batch, -1) > threshold
        expected = _counts_by_hand(pred, target.reshape(batch, -1) > 0.5)
        counts = confusion_counts(logits, target, threshold=threshold)
        assert counts.dtype == torch.int64 and counts.shape == (batch, 4)
        assert torch.equal(counts, expected), threshold
        assert (counts.sum(1) == 63).all()
    labels = torch.randint(0, 3, (batch, 6, 5), generator=g)  # class scores: argmax != 0 is foreground
    scores = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    classes = torch.randint(0, 3, (batch, 6, 5), generator=g)
    expected = _counts_by_hand(labels.reshape(batch, -1) != 0, classes.reshape(batch, -1) != 0)
    assert torch.equal(confusion_counts(scores, classes), expected)


def test_confusion_counts_of_all_zero_batches_and_the_empty_prediction_convention():
    zeros = torch.zeros(3, 1, 4, 4)
    # all-zero probabilities on all-zero masks: every pixel a true negative, one row per sample
    assert confusion_counts(zeros, zeros, from_logits=False).tolist() == [[0, 0, 0, 16]] * 3
    # all-zero logits are p = 0.5, not above the threshold: nothing predicted
    assert confusion_counts(zeros, zeros).tolist() == [[0, 0, 0, 16]] * 3
    assert confusion_counts(zeros[:1], zeros[:1]).tolist() == [[0, 0, 0, 16]]  # a batch of one keeps its axis
    # no pixels at all (an empty map): zero counts, still one row per sample
    assert confusion_counts(torch.zeros(2, 1, 0, 3), torch.zeros(2, 1, 0, 3)).tolist() == [[0, 0, 0, 0]] * 2
    assert confusion_counts(torch.zeros(1, 1, 0, 3), torch.zeros(1, 1, 0, 3)).tolist() == [[0, 0, 0, 0]]
    # empty prediction on an empty mask scores 1.0 (a correct "no crack"); on a crack 0.0
    target = torch.zeros(2, 1, 4, 4)
    target[1, 0, 1, 1] = 1
    s = summarize(confusion_counts(torch.zeros(2, 1, 4, 4), target, from_logits=False))
    assert s["dsc_per_sample"] == pytest.approx(0.5) and s["precision_per_sample"] == pytest.approx(0.5)
    assert s["dsc"] == 0.0 and s["recall"] == 0.0  # micro: the one crack pixel was missed


# ---- accuracy_interval is scipy's exact binomial interval: equal to the closed forms ----


@pytest.mark.parametrize("n", [1, 2, 7, 10, 50, 288, 1000])
def test_accuracy_interval_equals_the_beta_quantiles_and_the_closed_forms(n):
    from scipy.stats import beta

    from crackscope.metrics import accuracy_interval

    for confidence in (0.5, 0.9, 0.95, 0.99):
        a = (1 - confidence) / 2
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))):
            lo, hi = accuracy_interval(k, n, confidence)
            # Clopper-Pearson as beta quantiles, with the ends 0 and 1 where k = 0 or k = n
            ref_lo = 0.0 if k == 0 else beta.ppf(a, k, n - k + 1)
            ref_hi = 1.0 if k == n else beta.ppf(1 - a, k + 1, n - k)
            assert lo == pytest.approx(ref_lo, abs=1e-10) and hi == pytest.approx(ref_hi, abs=1e-10), (k, n)
            assert type(lo) is float and type(hi) is float
        # closed forms: P(X = n) = p^n = a at the lower end of n of n, P(X >= 1) = 1 - (1 - p)^n = a at 1 of n
        assert accuracy_interval(n, n, confidence) == pytest.approx((a ** (1 / n), 1.0), abs=1e-10)
        assert accuracy_interval(0, n, confidence) == pytest.approx((0.0, 1 - a ** (1 / n)), abs=1e-10)
        assert accuracy_interval(1, n, confidence)[0] == pytest.approx(1 - (1 - a) ** (1 / n), abs=1e-10)
    # the textbook 95 % interval of 5 of 10 (0.187, 0.813), to more digits
    assert accuracy_interval(5, 10) == pytest.approx((0.18708602, 0.81291398), abs=1e-8)


def test_false_alarms_on_sound_surface_hand_worked():
    """A 256 x 256 image with a labelled crack down column 10. Crack-free: every pixel more than
    16 px from it, i.e. columns 27 ... 255 (229 columns). Of the four 128-px tiles only the two on
    the right are wholly crack-free. Predicted: the crack itself (not a false alarm), a 5 x 5 blob
    (25 px) in the lower-right tile -- a false crack there -- and 3 px at column 60 of the
    lower-left tile, which is not a crack-free tile, so they count as false pixels only."""
    from crackscope.metrics import false_alarm_counts, false_alarm_summary

    truth = np.zeros((256, 256), dtype=np.uint8)
    truth[:, 10] = 1
    pred = truth.astype(bool).copy()
    pred[200:205, 200:205] = True
    pred[150, 60:63] = True
    c = false_alarm_counts(pred, truth)
    assert c == {"sound_px": 256 * 229, "false_px": 28, "sound_tiles": 2, "false_tiles": 1}
    # the crack-free mask given by the caller (columns 27 ... 255, by hand) counts the same
    by_hand = np.zeros((256, 256), dtype=bool)
    by_hand[:, 27:] = True
    assert false_alarm_counts(pred, truth, sound=by_hand) == c
    # a second, crack-free image: all of it is sound; a 19-px line is below the 20-px minimum
    blank = np.zeros((256, 256), dtype=np.uint8)
    line = np.zeros((256, 256), dtype=bool)
    line[5, 0:19] = True
    c2 = false_alarm_counts(line, blank)
    assert c2 == {"sound_px": 256 * 256, "false_px": 19, "sound_tiles": 4, "false_tiles": 0}
    # two diagonal neighbours join one 8-connected component: 10 + 10 px across a corner count 20
    corner = np.zeros((256, 256), dtype=bool)
    corner[0, 0:10] = True
    corner[1, 10:20] = True
    assert false_alarm_counts(corner, blank)["false_tiles"] == 1
    s = false_alarm_summary([c, c2])
    assert s["false_px_per_megapixel"] == pytest.approx(47 / (256 * 229 + 256 * 256) * 1e6)
    assert s["false_tile_share"] == pytest.approx(1 / 6)
    assert false_alarm_summary([])["false_tile_share"] is None
