"""Dempster–Shafer fusion (crackscope.fusion) against hand-worked numbers and known properties.

Expected values are worked out by hand (exact fractions in the comments), or come from an
independent reference written here (a brute-force orthogonal sum over explicit Python sets, a
Jaccard matrix from explicit sets), never from the code under test. The worked examples are the
ones in docs/fusion.md.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from crackscope.errors import InputError
from crackscope.fusion import (
    THETA,
    MassFunction,
    combine_dempster,
    conflict,
    conflict_sensor_weights,
    conflict_weighted_combination,
    deng_combination,
    deng_credibility,
    discount,
    from_probabilities,
    harmonic_label_weights,
    jaccard_matrix,
    jousselme_distance,
    murphy_combination,
    sensitivity_weighted_combination,
    sensor_conflict,
    sensor_conflict_matrix,
    vacuous,
)

ABC = ("A", "B", "C")
# The three-sensor example of docs/fusion.md (sections 4 and 6): m3 is the outlier.
M1, M2, M3 = [0.8, 0.1, 0.1], [0.7, 0.1, 0.2], [0.1, 0.1, 0.8]


def reference_dempster(m1: dict, m2: dict) -> dict:
    """Brute-force orthogonal sum over explicit frozensets: an independent reference."""
    combined: dict = {}
    empty = 0.0
    for (a, x), (b, y) in itertools.product(m1.items(), m2.items()):
        meet = a & b
        if meet:
            combined[meet] = combined.get(meet, 0.0) + x * y
        else:
            empty += x * y
    return {k: v / (1.0 - empty) for k, v in combined.items()}


def as_sets(m: MassFunction) -> dict:
    frame = frozenset(m.labels)
    sets = {frozenset([label]): float(v) for label, v in zip(m.labels, m.singletons)}
    sets[frame] = float(m.theta)
    return sets


def random_mass(rng: np.random.Generator, k: int = 4, theta: bool = True) -> MassFunction:
    raw = rng.random(k + 1) + 0.05
    if not theta:
        raw[-1] = 0.0
    raw /= raw.sum()
    return MassFunction(raw[:k], raw[k], [f"L{i}" for i in range(k)])


def assert_mass(m: MassFunction, singletons, theta=0.0, tol=1e-12):
    np.testing.assert_allclose(m.singletons, singletons, rtol=0, atol=tol)
    np.testing.assert_allclose(m.theta, theta, rtol=0, atol=tol)


# --- mass functions and validation -------------------------------------------------------------


def test_from_probabilities_is_bayesian_and_keeps_labels():
    m = from_probabilities([0.2, 0.3, 0.5], labels=ABC)
    assert m.to_dict() == {"A": 0.2, "B": 0.3, "C": 0.5, THETA: 0.0}
    assert m.singletons.dtype == np.float64 and not m.batched


@pytest.mark.parametrize(
    "singletons, theta, needle",
    [
        ([0.5, float("nan"), 0.5], 0.0, "'B'"),
        ([0.5, float("inf"), 0.5], 0.0, "inf"),
        ([0.6, -0.1, 0.5], 0.0, "-0.1"),
        ([0.5, 0.5, 0.1], -0.1, "'Θ'"),
        ([0.5, 0.3, 0.1], 0.0, "0.9"),  # sums to 0.9
        ([0.5, 0.3, 0.3], 0.0, "1.1"),  # sums to 1.1
    ],
)
def test_bad_masses_raise_naming_the_value(singletons, theta, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        MassFunction(singletons, theta, ABC)


def test_bad_mass_messages_name_the_label_and_the_value():
    with pytest.raises(InputError, match=r"'B'.*nan"):
        from_probabilities([0.5, np.nan, 0.5], ABC)
    with pytest.raises(InputError, match=r"'B'.*-0\.1.*negative"):
        from_probabilities([0.6, -0.1, 0.5], ABC)
    with pytest.raises(InputError, match=r"sum to 0\.9"):
        from_probabilities([0.5, 0.3, 0.1], ABC)


def test_bad_row_of_a_batch_is_named():
    batch = np.array([[0.5, 0.5], [0.2, 0.8], [0.7, 0.7]])
    with pytest.raises(InputError, match=r"row 2.*sum to 1\.4"):
        from_probabilities(batch)
    batch[2] = [np.nan, 1.0]
    with pytest.raises(InputError, match=r"'0' in row 2 is nan"):
        from_probabilities(batch)


def test_sum_tolerance_and_explicit_renormalisation():
    m = from_probabilities([0.5, 0.5 + 1e-7])  # within 1e-6: accepted, rescaled to sum exactly 1
    assert m.singletons.sum() == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(InputError):
        from_probabilities([2.0, 6.0])
    assert from_probabilities([2.0, 6.0], renormalise=True).singletons.tolist() == [0.25, 0.75]
    with pytest.raises(InputError, match="sum to 0"):
        from_probabilities([0.0, 0.0], renormalise=True)


def test_bad_shapes_and_labels_raise():
    with pytest.raises(InputError, match="K >= 2"):
        from_probabilities([1.0])
    with pytest.raises(InputError, match="shape"):
        from_probabilities(np.full((2, 2, 2), 0.5))
    with pytest.raises(InputError, match="distinct"):
        from_probabilities([0.5, 0.5], labels=["A", "A"])
    with pytest.raises(InputError, match="labels"):
        from_probabilities([0.5, 0.5], labels=["A"])
    with pytest.raises(InputError, match="frame"):
        combine_dempster(from_probabilities([0.5, 0.5], "AB"), from_probabilities([0.5, 0.5], "AC"))
    with pytest.raises(InputError, match="batch sizes"):
        combine_dempster(np.full((3, 2), 0.5), np.full((4, 2), 0.5))


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    p = torch.softmax(torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True), dim=-1)
    fused = combine_dempster(p, p)
    q = p.detach().double().numpy()
    expected = q * q / (q * q).sum(axis=1, keepdims=True)
    assert isinstance(fused, np.ndarray) and fused.dtype == np.float64
    np.testing.assert_allclose(fused, expected, rtol=1e-12)


def test_discount_and_vacuous():
    m = from_probabilities([0.2, 0.8], "AB")
    d = discount(m, 0.9)  # m'(A) = 0.18, m'(B) = 0.72, m'(Θ) = 0.1
    assert_mass(d, [0.18, 0.72], 0.1)
    assert_mass(discount(m, 0.0), [0.0, 0.0], 1.0)
    assert_mass(vacuous(3), [0, 0, 0], 1.0)
    with pytest.raises(InputError, match="reliability"):
        discount(m, 1.5)
    # BetP = m + m(Θ)/K = (0.18 + 0.05, 0.72 + 0.05)
    np.testing.assert_allclose(d.pignistic(), [0.23, 0.77], atol=1e-15)


# --- Dempster's rule ------------------------------------------------------------------------------


def test_dempster_worked_example_with_ignorance():
    # docs/fusion.md, example 1. m1: A .5, B .3, Θ .2; m2: A .6, C .2, Θ .2.
    # q(A) = .5*.6 + .5*.2 + .2*.6 = .52; q(B) = .3*.2 = .06; q(C) = .2*.2 = .04; q(Θ) = .04
    # 1 - K = .66, K = .34  ->  A 26/33, B 1/11, C 2/33, Θ 2/33
    m1 = MassFunction([0.5, 0.3, 0.0], 0.2, ABC)
    m2 = MassFunction([0.6, 0.0, 0.2], 0.2, ABC)
    assert conflict(m1, m2) == pytest.approx(0.34, abs=1e-12)
    fused = combine_dempster(m1, m2)
    assert isinstance(fused, MassFunction)
    assert_mass(fused, [26 / 33, 1 / 11, 2 / 33], 2 / 33)


def test_dempster_matches_brute_force_set_reference():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m1, m2 = random_mass(rng), random_mass(rng)
        expected = reference_dempster(as_sets(m1), as_sets(m2))
        got = as_sets(combine_dempster(m1, m2))
        for focal, value in expected.items():
            assert got[focal] == pytest.approx(value, abs=1e-12)


def test_zadeh_paradox():
    # m1: A .99, B .01; m2: B .01, C .99. Only B∩B survives: q(B) = 1e-4, K = 0.9999, m(B) = 1.
    m1, m2 = [0.99, 0.01, 0.0], [0.0, 0.01, 0.99]
    assert conflict(m1, m2) == pytest.approx(0.9999, abs=1e-12)
    np.testing.assert_allclose(combine_dempster(m1, m2), [0.0, 1.0, 0.0], atol=1e-12)
    # Murphy: average (.495, .01, .495), squared (.245025, .0001, .245025), sum .49015
    murphy = murphy_combination([m1, m2])
    np.testing.assert_allclose(murphy, [0.245025 / 0.49015, 0.0001 / 0.49015, 0.245025 / 0.49015], atol=1e-12)
    # Deng with two sources: each supports the other equally -> equal weights -> Murphy's answer.
    np.testing.assert_allclose(deng_combination([m1, m2]), murphy, atol=1e-12)
    assert murphy[1] < 1e-3


def test_dempster_is_commutative_and_associative():
    rng = np.random.default_rng(2)
    masses = [random_mass(rng) for _ in range(4)]
    reference = combine_dempster(*masses)
    for order in itertools.permutations(range(4)):
        assert_mass(combine_dempster(*[masses[i] for i in order]), reference.singletons, reference.theta)
    a, b, c = masses[:3]
    left = combine_dempster(combine_dempster(a, b), c)
    right = combine_dempster(a, combine_dempster(b, c))
    assert_mass(left, right.singletons, right.theta)


def test_vacuous_mass_is_the_identity():
    rng = np.random.default_rng(3)
    m = random_mass(rng)
    assert_mass(combine_dempster(m, vacuous(m.labels)), m.singletons, m.theta)
    assert conflict(m, vacuous(m.labels)) == 0.0


def test_total_conflict_raises():
    with pytest.raises(InputError, match="total conflict"):
        combine_dempster([1.0, 0.0], [0.0, 1.0])
    batch1 = np.array([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]])
    batch2 = np.array([[0.5, 0.5], [0.2, 0.8], [0.0, 1.0]])
    with pytest.raises(InputError, match="total conflict in row 2"):
        combine_dempster(batch1, batch2)
    with pytest.raises(InputError, match="separate arguments"):
        combine_dempster([[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(InputError, match="at least 1 mass "):
        murphy_combination([])


def test_batched_dempster_matches_row_by_row():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(5), size=(3, 200))  # three sources, 200 samples, 5 labels
    fused = combine_dempster(p[0], p[1], p[2])
    assert fused.shape == (200, 5)
    # Bayesian masses: the orthogonal sum is the normalised element-wise product.
    product = p[0] * p[1] * p[2]
    np.testing.assert_allclose(fused, product / product.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(conflict(p[0], p[1]), 1 - (p[0] * p[1]).sum(axis=1), atol=1e-14)
    # A single mass broadcasts against a batch.
    single = np.array([0.1, 0.2, 0.3, 0.2, 0.2])
    np.testing.assert_allclose(combine_dempster(single, p[0])[7], combine_dempster(single, p[0][7]), atol=1e-14)
    batch = combine_dempster(from_probabilities(p[0]), p[1])
    assert isinstance(batch, MassFunction) and len(batch) == 200
    np.testing.assert_allclose(batch[7].singletons, combine_dempster(p[0][7], p[1][7]), atol=1e-14)


# --- Jousselme distance --------------------------------------------------------------------------


def test_jaccard_matrix_from_explicit_sets():
    labels = ["A", "B", "C", "D"]
    focal = [frozenset([x]) for x in labels] + [frozenset(labels)]
    expected = [[len(a & b) / len(a | b) for b in focal] for a in focal]
    np.testing.assert_allclose(jaccard_matrix(4), expected, atol=0)


def test_jousselme_known_values():
    m = MassFunction([0.6, 0.3], 0.1, "AB")
    assert jousselme_distance(m, m) == 0.0
    assert jousselme_distance([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]) == pytest.approx(1.0, abs=1e-15)
    # docs/fusion.md, example 3: m1 = (A .6, B .3, Θ .1), m2 = (A .2, B .5, Θ .3), K = 2.
    # v = (.4, -.2, -.2); D = [[1,0,.5],[0,1,.5],[.5,.5,1]]
    # vᵀDv = .16 + .04 + .04 + 2*.5*(.4)(-.2) + 2*.5*(-.2)(-.2) = .20  ->  d = sqrt(.10)
    m2 = MassFunction([0.2, 0.5], 0.3, "AB")
    assert jousselme_distance(m, m2) == pytest.approx(np.sqrt(0.1), abs=1e-15)
    assert jousselme_distance(m2, m) == pytest.approx(np.sqrt(0.1), abs=1e-15)
    # Certain singleton vs vacuous on K = 2: v = (1, 0, -1), vᵀDv = 1 + 1 - 2*.5 = 1 -> sqrt(.5)
    assert jousselme_distance(MassFunction([1.0, 0.0], 0.0, "AB"), vacuous("AB")) == pytest.approx(np.sqrt(0.5))


def test_jousselme_batched():
    p = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    q = np.array([[0.0, 1.0], [0.5, 0.5], [0.8, 0.2]])
    # Bayesian: d = sqrt(½ Σ v²): 1, 0, sqrt(½ (.36 + .36)) = .6
    np.testing.assert_allclose(jousselme_distance(p, q), [1.0, 0.0, 0.6], atol=1e-15)


# --- Murphy and Deng -----------------------------------------------------------------------------


def test_plain_dempster_on_the_three_sensor_example():
    # products A .8*.7*.1 = .056, B .001, C .1*.2*.8 = .016; sum .073
    np.testing.assert_allclose(combine_dempster(M1, M2, M3), np.array([56, 1, 16]) / 73, atol=1e-12)


def test_murphy_worked_example():
    # docs/fusion.md, example 4: average (1.6/3, .3/3, 1.1/3), cubed ∝ 4.096 : .027 : 1.331
    np.testing.assert_allclose(murphy_combination([M1, M2, M3]), np.array([4.096, 0.027, 1.331]) / 5.454, atol=1e-12)


def test_deng_worked_example():
    # d12 = sqrt(½(.01 + 0 + .01)) = .1, d13 = sqrt(½(.49 + 0 + .49)) = .7, d23 = sqrt(½(.36 + .36)) = .6
    # Sim = .9, .3, .4; Sup = (1.2, 1.3, .7), ΣSup = 3.2; Crd = (.375, .40625, .21875)
    np.testing.assert_allclose(deng_credibility([M1, M2, M3]), [0.375, 0.40625, 0.21875], atol=1e-12)
    # WAE = (97/160, 16/160, 47/160); cubed and normalised
    cubes = np.array([97.0, 16.0, 47.0]) ** 3
    np.testing.assert_allclose(deng_combination([M1, M2, M3]), cubes / cubes.sum(), atol=1e-12)


def test_murphy_and_deng_batched_match_row_by_row():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4), size=(3, 50))
    for rule in (murphy_combination, deng_combination):
        fused = rule(list(p))
        assert fused.shape == (50, 4)
        for row in (0, 17, 49):
            np.testing.assert_allclose(fused[row], rule([p[0][row], p[1][row], p[2][row]]), atol=1e-13)


def test_single_source_is_returned_unchanged():
    np.testing.assert_allclose(murphy_combination([M1]), M1, atol=1e-15)
    np.testing.assert_allclose(deng_combination([M1]), M1, atol=1e-15)


# --- harmonics paper: sensitivity-weighted multi-harmonic rule -----------------------------------

H2 = [0.6, 0.2, 0.1, 0.1]  # second harmonic, accuracy 0.95: top label A
H3 = [0.05, 0.15, 0.7, 0.1]  # third harmonic, accuracy 0.80: top label C
ABCD = ("A", "B", "C", "D")


def test_sensitivity_worked_example():
    # docs/fusion.md, example 5. Label weights before normalising:
    #   A rejected by H3 only: 1 - .80 = .20;   C rejected by H2 only: 1 - .95 = .05
    #   B, D rejected by both: .05 * .20 = .01  -> λ = (20, 1, 5, 1) / 27
    np.testing.assert_allclose(harmonic_label_weights([H2, H3], [0.95, 0.80]), np.array([20, 1, 5, 1]) / 27, atol=1e-15)
    # Plain Dempster: products (.03, .03, .07, .01) / .14 -> C wins with .5
    np.testing.assert_allclose(combine_dempster(H2, H3), [3 / 14, 3 / 14, 0.5, 1 / 14], atol=1e-12)
    # Weighted: (.03*.20, .03*.01, .07*.05, .01*.01) = (.006, .0003, .0035, .0001), sum .0099
    fused = sensitivity_weighted_combination([H2, H3], [0.95, 0.80])
    np.testing.assert_allclose(fused, [20 / 33, 1 / 33, 35 / 99, 1 / 99], atol=1e-12)
    assert np.argmax(fused) == 0  # the more accurate harmonic's label A now wins


def test_sensitivity_with_zero_weights_is_plain_dempster():
    np.testing.assert_allclose(
        sensitivity_weighted_combination([H2, H3], [0.0, 0.0]), combine_dempster(H2, H3), atol=1e-14
    )


def test_sensitivity_when_all_harmonics_agree():
    # Both tops are A. Dempster: (.5*.6, .3*.2, .1*.1, .1*.1) = (.30, .06, .01, .01) / .38
    # Label weights: A 1, others (1-.9)(1-.7) = .03 -> (.30, .0018, .0003, .0003) / .3024
    a, b, w = [0.5, 0.3, 0.1, 0.1], [0.6, 0.2, 0.1, 0.1], [0.9, 0.7]
    fused = sensitivity_weighted_combination([a, b], w)
    np.testing.assert_allclose(fused, np.array([0.30, 0.0018, 0.0003, 0.0003]) / 0.3024, atol=1e-12)
    dempster = combine_dempster(a, b)
    assert np.argmax(fused) == np.argmax(dempster) == 0 and fused[0] >= dempster[0]
    # Ratios between the non-consensus labels are Dempster's; A's odds grow by 1 / .03.
    assert fused[1] / fused[2] == pytest.approx(dempster[1] / dempster[2])
    assert (fused[0] / fused[1]) / (dempster[0] / dempster[1]) == pytest.approx(1 / 0.03)


def test_sensitivity_equal_accuracies_still_penalise_rejected_labels():
    # Documented: equal accuracies do NOT reduce the rule to plain Dempster.
    fused = sensitivity_weighted_combination([H2, H3], [0.9, 0.9])
    assert not np.allclose(fused, combine_dempster(H2, H3))
    # A and C are each rejected by one harmonic (×.1); B, D by both (×.01): A:C ratio kept.
    dempster = combine_dempster(H2, H3)
    assert fused[0] / fused[2] == pytest.approx(dempster[0] / dempster[2])


def test_sensitivity_bad_accuracies_and_vetoes():
    with pytest.raises(InputError, match=r"accuracies\[1\].*93"):
        sensitivity_weighted_combination([H2, H3], [0.95, 93])
    with pytest.raises(InputError, match="one number per source"):
        sensitivity_weighted_combination([H2, H3], [0.95])
    with pytest.raises(InputError, match="total conflict"):  # two perfect harmonics that disagree
        sensitivity_weighted_combination([H2, H3], [1.0, 1.0])


def test_sensitivity_batched_names_rows_and_matches_row_by_row():
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(6), size=(2, 40))
    fused = sensitivity_weighted_combination(list(p), [0.97, 0.75])
    assert fused.shape == (40, 6)
    for row in (0, 39):
        np.testing.assert_allclose(
            fused[row], sensitivity_weighted_combination([p[0][row], p[1][row]], [0.97, 0.75]), atol=1e-13
        )


# --- harmonics paper: conflict-weighted multi-sensor rule ----------------------------------------


def test_sensor_conflict_agree_and_disagree():
    # Agreeing tops (A): c = 1 - .8 * .7 = .44
    assert sensor_conflict(M1, M2) == pytest.approx(0.44, abs=1e-15)
    # Disagreeing tops A (M1) and C (M3): c = 1 - m1(C) m3(A) = 1 - .1 * .1 = .99
    assert sensor_conflict(M1, M3) == pytest.approx(0.99, abs=1e-15)
    # Ratio form: r1 = m1(A)/m1(C) = 8, r3 = m3(C)/m3(A) = 8; 1 - m1(A) m3(C) / (r1 r3) = 1 - .64/64
    assert sensor_conflict(M1, M3) == pytest.approx(1 - 0.8 * 0.8 / (8 * 8), abs=1e-15)
    assert sensor_conflict([1.0, 0.0, 0.0], [1.0, 0.0, 0.0]) == 0.0
    assert sensor_conflict([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]) == 1.0
    # Larger support ratios mean more conflict.
    assert sensor_conflict([0.6, 0.4], [0.4, 0.6]) < sensor_conflict([0.9, 0.1], [0.1, 0.9])


def test_conflict_weighted_worked_example():
    # docs/fusion.md, example 6. c12 = .44, c13 = .99, c23 = 1 - m2(C) m3(A) = 1 - .2*.1 = .98
    np.testing.assert_allclose(
        sensor_conflict_matrix([M1, M2, M3]), [[0, 0.44, 0.99], [0.44, 0, 0.98], [0.99, 0.98, 0]], atol=1e-15
    )
    # S = 2.41; w1 = c23/S = 98/241, w2 = c13/S = 99/241, w3 = c12/S = 44/241
    weights = conflict_sensor_weights([M1, M2, M3])
    np.testing.assert_allclose(weights, np.array([98, 99, 44]) / 241, atol=1e-15)
    assert np.argmin(weights) == 2  # the sensor that disagrees with two agreeing ones
    # WAE = (152.1, 24.1, 64.8) / 241, combined with itself twice: cubes, normalised
    cubes = np.array([152.1, 24.1, 64.8]) ** 3
    np.testing.assert_allclose(conflict_weighted_combination([M1, M2, M3]), cubes / cubes.sum(), atol=1e-12)
    # combinations=0 returns the weighted average itself
    np.testing.assert_allclose(
        conflict_weighted_combination([M1, M2, M3], combinations=0), np.array([152.1, 24.1, 64.8]) / 241, atol=1e-12
    )


def test_conflict_weights_outlier_gets_least_weight_for_more_sensors():
    rng = np.random.default_rng(7)
    agreeing = [rng.dirichlet([20, 2, 2, 2]) for _ in range(4)]  # all favour label 0
    outlier = np.array([0.02, 0.03, 0.05, 0.9])
    weights = conflict_sensor_weights([*agreeing, outlier])
    assert weights.sum() == pytest.approx(1.0) and np.argmin(weights) == 4


def test_conflict_weights_degenerate_cases():
    np.testing.assert_allclose(conflict_sensor_weights([M1, M3]), [0.5, 0.5])  # n = 2
    certain = [1.0, 0.0, 0.0]
    np.testing.assert_allclose(conflict_sensor_weights([certain] * 3), [1 / 3] * 3)  # S = 0
    with pytest.raises(InputError, match="combinations"):
        conflict_weighted_combination([M1, M2], combinations=-1)


def test_conflict_weighted_batched_matches_row_by_row():
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.ones(5), size=(3, 30))
    fused = conflict_weighted_combination(list(p))
    weights = conflict_sensor_weights(list(p))
    assert fused.shape == (30, 5) and weights.shape == (3, 30)
    for row in (0, 29):
        sources = [p[0][row], p[1][row], p[2][row]]
        np.testing.assert_allclose(fused[row], conflict_weighted_combination(sources), atol=1e-13)
        np.testing.assert_allclose(weights[:, row], conflict_sensor_weights(sources), atol=1e-15)
