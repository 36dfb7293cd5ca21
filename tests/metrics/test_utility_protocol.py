"""The utility test against problems whose answer is known, and its folds against sklearn on the same splits.

Two Gaussian classes in 24 dimensions (class means 0.45 apart in each): a linear classifier gains from more training
images of the same distribution, so synthetic images drawn from it must gain like held-out real ones; the same
images with swapped labels must lose; images of no class (pure noise, random labels) must not help.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from metrics.results import InsufficientSamplesError
from metrics.utility import UtilityDesign, evaluate_utility
from metrics.utility.splits import repeated_splits

D = 24


def gaussian(n: int, rng: np.random.Generator, positive_share: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    labels = (rng.random(n) < positive_share).astype(int)
    x = rng.normal(size=(n, D)) + labels[:, None] * 0.45
    return x, np.where(labels == 1, "melanoma", "nevus")


@pytest.fixture(scope="module")
def real():
    rng = np.random.default_rng(11)
    x, labels = gaussian(360, rng)
    groups = [f"lesion-{i // 2}" for i in range(360)]  # two images per lesion
    skin = np.where(rng.random(360) < 0.5, "II", "IV")
    return x, labels, groups, skin


@pytest.fixture(scope="module")
def same_distribution(real):
    x, labels, groups, skin = real
    synthetic_x, synthetic_labels = gaussian(700, np.random.default_rng(12))
    return evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels, subgroups={"phototype": skin},
                            design=UtilityDesign(repeats=3, n_bootstrap=400), seed=5)


def condition(result, key):
    return next(c for c in result.conditions if c.key == key)


def test_synthetic_images_of_the_same_distribution_gain_like_held_out_real_ones(same_distribution):
    result = same_distribution
    synthetic, real_added = condition(result, "augmented@1"), condition(result, "real_added@1")
    assert synthetic.gain["auroc"].value > 0.01 and real_added.gain["auroc"].value > 0.01
    assert abs(synthetic.gain["auroc"].value - real_added.gain["auroc"].value) < 0.02
    assert result.decision.ratio == 1.0 and result.decision.gain_ci.low >= -0.02  # non-inferior: PASS
    assert result.decision.negative_control_ci.low >= -0.02
    # More images of the same distribution help more: the curve rises from 0.25 to 4.
    assert condition(result, "augmented@4").gain["auroc"].value > condition(result, "augmented@0.25").gain["auroc"].value
    # Train synthetic, test real: as good as the same number of real images (the classification accuracy score).
    tstr, trtr = condition(result, "synthetic_only"), condition(result, "real_only")
    assert tstr.figures["auroc"].value / trtr.figures["auroc"].value == pytest.approx(1.0, abs=0.04)
    # Labels agree with what a classifier of real images says, as often as for real images.
    consistency = result.label_consistency
    assert consistency["synthetic_mean"] == pytest.approx(consistency["real_mean"], abs=0.08)


def test_swapped_labels_lose_and_fail_the_margin(same_distribution):
    decision = same_distribution.decision
    assert decision.positive_control_gain < -0.05
    assert decision.positive_control_ci.high < -0.02  # the positive control fails the criterion


def test_noise_with_random_labels_does_not_help(real):
    x, labels, groups, _ = real
    rng = np.random.default_rng(13)
    noise = rng.normal(size=(500, D)) * 3.0
    result = evaluate_utility(x, labels, groups, noise, rng.choice(["melanoma", "nevus"], 500),
                              design=UtilityDesign(repeats=2, ratios=(1.0,), n_bootstrap=300), seed=5)
    assert result.decision.gain < 0.005
    assert condition(result, "synthetic_only").figures["auroc"].value == pytest.approx(0.5, abs=0.08)


def test_every_figure_has_both_intervals_and_the_deciding_comparison_its_delong_cross_check(same_distribution):
    result = same_distribution
    for entry in result.conditions:
        for estimate in entry.figures.values():
            assert estimate.ci.low <= estimate.value <= estimate.ci.high
            assert estimate.nb_ci.n_resamples == 15  # 5 folds x 3 repeats
    delong = result.decision.delong
    assert delong is not None and delong.ci.low < delong.difference < delong.ci.high
    # The Nadeau-Bengio interval charges the training-set variability too: wider than the bootstrap here.
    gain = condition(result, "augmented@1").gain["auroc"]
    assert gain.nb_ci.high - gain.nb_ci.low > gain.ci.high - gain.ci.low


def test_subgroups_report_their_gains_and_the_fairness_gap(same_distribution):
    rows = [row for row in same_distribution.subgroups if row.field == "phototype"]
    assert sorted(row.value for row in rows) == ["II", "IV"]
    assert sum(row.n for row in rows) == 360 and not any(row.underpowered for row in rows)
    gap = next(g for g in same_distribution.fairness if g.field == "phototype" and g.metric == "auroc")
    expected = abs(rows[0].real_only["auroc"].value - rows[1].real_only["auroc"].value)
    assert gap.real_only.value == pytest.approx(expected)
    assert gap.change.value == pytest.approx(gap.augmented.value - gap.real_only.value)


def test_a_small_subgroup_is_flagged_under_powered(real):
    x, labels, groups, _ = real
    site = np.where(np.arange(360) < 20, "palm", "trunk")
    synthetic_x, synthetic_labels = gaussian(400, np.random.default_rng(14))
    result = evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels, subgroups={"site": site},
                              design=UtilityDesign(repeats=1, ratios=(1.0,), n_bootstrap=200), seed=1)
    palm = next(row for row in result.subgroups if row.value == "palm")
    assert palm.underpowered and "under-powered" in palm.note
    gap = next(g for g in result.fairness if g.metric == "auroc")
    assert gap.real_only is None and "1 subgroup(s)" in gap.note


class Spy:
    """A classifier that records the image ids (column 0) it trains on and scores, and predicts at random."""

    def __init__(self):
        self.trained, self.scored = [], []

    def describe(self):
        return "spy"

    def representation(self, basis_rows):
        return lambda rows: rows

    def fit(self, x, y, n_classes, seed):
        self.trained.append(set(x[:, 0].astype(int).tolist()))

        def predict(rows):
            self.scored.append((self.trained[-1], set(rows[:, 0].astype(int).tolist())))
            return np.random.default_rng(len(self.scored)).dirichlet(np.ones(n_classes), len(rows))
        return predict


def test_no_synthetic_image_is_ever_scored_and_no_real_test_image_ever_trains(real):
    x, labels, groups, _ = real
    synthetic_x, synthetic_labels = gaussian(300, np.random.default_rng(15))
    real_ids, synthetic_ids = np.arange(360), np.arange(1000, 1300)
    spy = Spy()
    evaluate_utility(np.column_stack([real_ids, x]), labels, groups, np.column_stack([synthetic_ids, synthetic_x]),
                     synthetic_labels, classifier=spy, design=UtilityDesign(repeats=2, n_bootstrap=50), seed=3)
    fold_scores = spy.scored[:-1]  # the last prediction is label consistency: real-trained, scoring synthetic images
    assert fold_scores and all(scored <= set(real_ids) for _, scored in fold_scores)
    assert all(not (trained & scored) for trained, scored in fold_scores)
    assert spy.scored[-1][1] <= set(synthetic_ids) and spy.scored[-1][0] == set(real_ids)
    assert any(trained & set(synthetic_ids) for trained in spy.trained)


def test_real_only_fold_figures_equal_sklearn_on_the_same_splits(real):
    x, labels, groups, _ = real
    synthetic_x, synthetic_labels = gaussian(300, np.random.default_rng(16))
    result = evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels,
                              design=UtilityDesign(repeats=2, ratios=(1.0,), n_bootstrap=50), seed=9)
    y = (labels == "melanoma").astype(int)
    aucs = []
    for split in repeated_splits(1 - y, groups, folds=5, repeats=2, seed=9):  # classes sorted: melanoma = 0
        scaler = StandardScaler().fit(x[split.train])
        pca = PCA(n_components=min(64, len(split.train) - 1, D), svd_solver="randomized",
                  random_state=0).fit(scaler.transform(x[split.train]))
        model = LogisticRegression(C=1 / np.sqrt(pca.n_components_), class_weight="balanced",
                                   solver="newton-cholesky", max_iter=300)
        model.fit(pca.transform(scaler.transform(x[split.train])), y[split.train])
        aucs.append(roc_auc_score(y[split.test], model.decision_function(pca.transform(scaler.transform(x[split.test])))))
    assert condition(result, "real_only").figures["auroc"].fold_mean == pytest.approx(np.mean(aucs), abs=1e-9)


def test_same_inputs_and_seed_give_the_same_result(real):
    x, labels, groups, _ = real
    synthetic_x, synthetic_labels = gaussian(300, np.random.default_rng(17))
    design = UtilityDesign(repeats=1, ratios=(0.5, 1.0), n_bootstrap=100)
    first = evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels, design=design, seed=2).to_dict()
    again = evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels, design=design, seed=2).to_dict()
    first.pop("seconds"), again.pop("seconds")
    assert first == again


def test_unknown_synthetic_classes_are_left_out_and_a_missing_class_is_refused(real):
    x, labels, groups, _ = real
    synthetic_x, synthetic_labels = gaussian(300, np.random.default_rng(18))
    synthetic_labels = synthetic_labels.astype(object)
    synthetic_labels[:10] = "dermatofibroma"
    result = evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels,
                              design=UtilityDesign(repeats=1, ratios=(0.5,), decision_ratio=0.5, n_bootstrap=50))
    assert result.synthetic_excluded == {"dermatofibroma": 10} and result.n_synthetic == 290
    with pytest.raises(InsufficientSamplesError, match="no labelled image of class"):
        evaluate_utility(x, labels, groups, synthetic_x[synthetic_labels == "nevus"],
                         synthetic_labels[synthetic_labels == "nevus"], design=UtilityDesign(repeats=1))


def test_a_small_set_decides_at_the_largest_ratio_it_allows_and_says_so(real):
    x, labels, groups, _ = real
    synthetic_x, synthetic_labels = gaussian(120, np.random.default_rng(19))
    result = evaluate_utility(x, labels, groups, synthetic_x, synthetic_labels,
                              design=UtilityDesign(repeats=1, n_bootstrap=50))
    assert result.ratios == [0.25, 0.5] and result.decision.ratio == 0.5
    assert "too small for 1 synthetic images per real training image" in result.decision.note
