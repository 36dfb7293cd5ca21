"""Any metric per subgroup, with n and an under-powered flag; refusals are recorded, not dropped."""
from __future__ import annotations

import json

from metrics.precision_recall import compute_precision_recall
from metrics.subgroups import compute_by_matched_subgroup, compute_by_subgroup, group_rows, recommended_min_n

from .conftest import N_PAD, labelled_rows


def test_fitzpatrick_breakdown_of_pad_ufes_20(isic_reference, pad_features, pad_dir) -> None:
    fitzpatrick = [row["fitzpatrick"] for row in labelled_rows(pad_dir)[:N_PAD]]
    breakdown = compute_by_subgroup(
        fitzpatrick,
        lambda rows: compute_precision_recall(isic_reference, pad_features.select(rows), seed=0, n_bootstrap=50),
        min_n=recommended_min_n("prdc"),
        metric_name="precision/recall k=5",
    )
    groups = breakdown.by_group()
    assert sum(g.n for g in breakdown.groups) == N_PAD
    assert list(groups)[-1] == "unknown"  # blanks kept as their own group, listed last
    for group in breakdown.groups:
        assert group.underpowered == (group.n < 30)
        if group.n <= 5:  # k = 5 needs more than 5 images: refused, and the reason is kept
            assert group.result is None and "k=5" in group.error
        else:
            assert group.result is not None and group.result.n_generated == group.n
    json.dumps(breakdown.to_dict())


def test_matched_breakdown_counts_both_sets() -> None:
    reference_labels = ["NEV"] * 40 + ["MEL"] * 8
    generated_labels = ["NEV"] * 35 + ["MEL"] * 12 + [None]
    breakdown = compute_by_matched_subgroup(
        reference_labels, generated_labels, lambda r, g: (len(r), len(g)), min_n=10
    )
    groups = breakdown.by_group()
    assert groups["NEV"].result == (40, 35) and not groups["NEV"].underpowered
    assert groups["MEL"].n_reference == 8 and groups["MEL"].underpowered
    assert groups["unknown"].result is None and groups["unknown"].error == "group empty in one set"


def test_labels_are_normalised() -> None:
    groups = group_rows([2.0, "2", None, float("nan"), "", 10, "I"])
    assert list(groups) == ["2", "10", "I", "unknown"]
    assert groups["2"].tolist() == [0, 1] and groups["unknown"].tolist() == [2, 3, 4]
