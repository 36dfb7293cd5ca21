"""Any metric per subgroup (Fitzpatrick type, diagnosis, ...), each group with its n and an under-powered flag.

    >>> by_type = compute_by_subgroup(
    ...     generated_fitzpatrick, lambda rows: compute_precision_recall(reference, generated.select(rows), seed=0),
    ...     min_n=30, metric="precision/recall k=5")
    >>> by_type.to_dict()

`compute_by_subgroup` splits one set by its labels; `compute_by_matched_subgroup` splits both sets by the same
labelling (subgroup of the reference vs the same subgroup of the generated set). A group smaller than `min_n`
is flagged under-powered; it is still computed unless the metric itself refuses (then `result` is None and
`error` says why), so a report can show "n = 3, not interpretable" instead of silently dropping the group.
Missing labels (None, NaN, empty string) form their own group "unknown".
"""
from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metrics.results import InsufficientSamplesError, JsonResult, to_jsonable

UNKNOWN = "unknown"


def recommended_min_n(metric: str, feature_dim: int | None = None, k: int = 5) -> int:
    """Smallest group size worth reporting for a metric (a floor, not a power calculation)."""
    if metric == "fd":
        return (feature_dim or 0) + 1  # full-rank covariance
    if metric == "prdc":
        return max(30, 4 * k)  # k-NN balls inside a handful of points say little
    if metric == "proportion":
        return 30
    return 20


@dataclass(frozen=True)
class SubgroupResult(JsonResult):
    group: str
    n: int  # rows of the (generated, or only) set in the group
    n_reference: int | None  # rows of the reference set, in matched breakdowns
    underpowered: bool
    result: Any | None
    error: str | None


@dataclass(frozen=True)
class SubgroupBreakdown:
    metric: str
    min_n: int
    groups: tuple[SubgroupResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "min_n": self.min_n,
            "groups": [
                {
                    "group": g.group, "n": g.n, "n_reference": g.n_reference, "underpowered": g.underpowered,
                    "error": g.error,
                    "result": g.result.to_dict() if hasattr(g.result, "to_dict") else to_jsonable(g.result),
                }
                for g in self.groups
            ],
        }

    def by_group(self) -> dict[str, SubgroupResult]:
        return {g.group: g for g in self.groups}


def normalise_label(label: Hashable) -> str:
    if label is None or (isinstance(label, float) and math.isnan(label)) or str(label).strip() == "":
        return UNKNOWN
    if isinstance(label, float) and label.is_integer():
        return str(int(label))  # pandas reads an int column with blanks as floats: 2.0 -> "2"
    return str(label)


def _group_order(name: str) -> tuple:
    """Numbers numerically, then other labels alphabetically, "unknown" last."""
    if name == UNKNOWN:
        return (2, 0.0, name)
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def group_rows(labels: Sequence[Hashable]) -> dict[str, np.ndarray]:
    """label -> row indices, in report order (see _group_order)."""
    groups: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(normalise_label(label), []).append(row)
    return {name: np.asarray(groups[name], dtype=np.int64) for name in sorted(groups, key=_group_order)}


def _run(metric: Callable[..., Any], *rows: np.ndarray) -> tuple[Any | None, str | None]:
    try:
        return metric(*rows), None
    except (InsufficientSamplesError, ValueError) as error:
        return None, str(error)


def compute_by_subgroup(
    labels: Sequence[Hashable], metric: Callable[[np.ndarray], Any], *, min_n: int, metric_name: str = ""
) -> SubgroupBreakdown:
    """metric(row_indices) for each label's rows."""
    results = []
    for group, rows in group_rows(labels).items():
        result, error = _run(metric, rows)
        results.append(SubgroupResult(group, len(rows), None, len(rows) < min_n, result, error))
    return SubgroupBreakdown(metric_name, min_n, tuple(results))


def compute_by_matched_subgroup(
    reference_labels: Sequence[Hashable],
    generated_labels: Sequence[Hashable],
    metric: Callable[[np.ndarray, np.ndarray], Any],
    *,
    min_n: int,
    metric_name: str = "",
) -> SubgroupBreakdown:
    """metric(reference_rows, generated_rows) for each label present in either set."""
    reference_groups, generated_groups = group_rows(reference_labels), group_rows(generated_labels)
    empty = np.empty(0, dtype=np.int64)
    names = sorted(set(reference_groups) | set(generated_groups), key=_group_order)
    results = []
    for group in names:
        ref_rows, gen_rows = reference_groups.get(group, empty), generated_groups.get(group, empty)
        if len(ref_rows) and len(gen_rows):
            result, error = _run(metric, ref_rows, gen_rows)
        else:
            result, error = None, "group empty in one set"
        underpowered = min(len(ref_rows), len(gen_rows)) < min_n
        results.append(SubgroupResult(group, len(gen_rows), len(ref_rows), underpowered, result, error))
    return SubgroupBreakdown(metric_name, min_n, tuple(results))
