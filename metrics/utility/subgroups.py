"""Who the synthetic images help: figures per subgroup of the real test images, the fairness gap, and label
consistency (TRTS). Computed from the out-of-fold probabilities that metrics.utility.protocol collected."""
from __future__ import annotations

import numpy as np

from metrics.utility.results import (
    Estimate,
    FairnessGap,
    SubgroupFigures,
    estimate,
    figures_matrix,
    nanmean_quiet,
)
from metrics.utility.scoring import METRICS


def label_consistency(classifier, real_x, y_real, synthetic_x, y_syn, all_real, classes, seed) -> dict:
    """TRTS: a classifier trained on every real image labels the synthetic ones; per class, the share given its own
    label, beside the share of real images given their own label by classifiers that never trained on them."""
    transform = classifier.representation(real_x)
    predict = classifier.fit(transform(real_x), y_real, len(classes), int(seed))
    synthetic_predicted = np.argmax(predict(transform(synthetic_x)), axis=1) if len(y_syn) else np.array([], int)
    real_predicted = np.argmax(all_real.probabilities, axis=2)  # (repeats, n_real)
    rows = []
    for c, name in enumerate(classes):
        syn_members, real_members = y_syn == c, y_real == c
        rows.append({"class": name, "synthetic_n": int(syn_members.sum()),
                     "synthetic_share": float(np.mean(synthetic_predicted[syn_members] == c)) if syn_members.any() else None,
                     "real_n": int(real_members.sum()),
                     "real_share": float(np.mean(real_predicted[:, real_members] == c))})
    defined = [r for r in rows if r["synthetic_share"] is not None]
    return {"per_class": rows,
            "synthetic_mean": float(np.mean([r["synthetic_share"] for r in defined])) if defined else None,
            "real_mean": float(np.mean([r["real_share"] for r in rows])),
            "method": "classifier trained on every real image applies to the synthetic images; real images scored "
                      "out of fold by classifiers trained on each fold's whole training side"}


def subgroup_figures(subgroups, y_real, classes, high_risk, positive_class, weights, runs, decision_key, negative_key,
               design) -> tuple[list[SubgroupFigures], list[FairnessGap]]:
    rows: list[SubgroupFigures] = []
    fairness: list[FairnessGap] = []
    n_real = len(y_real)
    for field_name, values in subgroups.items():
        values = np.asarray(["" if v is None else str(v) for v in values])
        if len(values) != n_real:
            raise ValueError(f"subgroup {field_name!r} has {len(values)} values for {n_real} real images")
        field_rows = []
        for value in sorted(set(values.tolist()) - {""}):
            members = values == value
            mask = members.astype(np.float64)
            counts = np.bincount(y_real[members], minlength=len(classes))
            underpowered = bool(members.sum() < design.min_subgroup_n or counts.min() < design.min_subgroup_class_n)
            note = ""
            if counts.min() == 0:
                note = "one class only: AUROC and balanced accuracy undefined"
            elif underpowered:
                note = (f"under-powered: {int(members.sum())} images, fewest of one class {int(counts.min())} (minimum "
                        f"{design.min_subgroup_n}, and {design.min_subgroup_class_n} per class)")

            def figures(key: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
                probabilities = runs[key].probabilities
                return (figures_matrix(y_real, probabilities, high_risk, mask[None, :], positive_class),
                        figures_matrix(y_real, probabilities, high_risk, weights * mask, positive_class))

            base_point, base_boot = figures("real_only")
            aug_point, aug_boot = figures(decision_key)

            def pack(point, boot, minus=None) -> dict[str, Estimate]:
                out = {}
                for m in METRICS:
                    p, b = point[m][:, 0], boot[m]
                    if minus is not None:
                        p, b = p - minus[0][m][:, 0], b - minus[1][m]
                    out[m] = estimate(p, b, None, 0.0, design.level)
                return out

            control = None
            if negative_key is not None:
                neg_point, neg_boot = figures(negative_key)
                control = pack(neg_point, neg_boot, (base_point, base_boot))
            field_rows.append((SubgroupFigures(
                field_name, value, int(members.sum()), dict(zip(classes, counts.tolist())), underpowered, note,
                pack(base_point, base_boot), pack(aug_point, aug_boot), pack(aug_point, aug_boot, (base_point, base_boot)),
                control), (base_point, base_boot, aug_point, aug_boot)))
        rows.extend(row for row, _ in field_rows)
        for m in METRICS:
            fairness.append(_fairness_gap(field_name, m, field_rows, design.level))
    return rows, fairness


def _fairness_gap(field_name: str, metric: str, field_rows: list, level: float) -> FairnessGap:
    powered = [(row, arrays) for row, arrays in field_rows
               if not row.underpowered and row.real_only[metric].value is not None and row.augmented[metric].value is not None]
    names = [row.value for row, _ in powered]
    if len(powered) < 2:
        return FairnessGap(field_name, metric, names, None, None, None, None, None,
                           f"{len(powered)} subgroup(s) with enough test images: no gap to measure")

    def gap(which: int) -> tuple[np.ndarray, np.ndarray]:
        # Each subgroup's figure averaged over the repeats first (as reported), then best minus worst.
        point = np.stack([nanmean_quiet(arrays[which][metric][:, 0], axis=0) for _, arrays in powered])  # (groups,)
        boot = np.stack([nanmean_quiet(arrays[which + 1][metric], axis=0) for _, arrays in powered])  # (groups, B)
        return (np.array([point.max() - point.min()]),
                (np.nanmax(boot, axis=0) - np.nanmin(boot, axis=0))[None, :])

    base_point, base_boot = gap(0)
    aug_point, aug_boot = gap(2)
    means = [float(nanmean_quiet(arrays[0][metric][:, 0], axis=0)) for _, arrays in powered]
    return FairnessGap(field_name, metric, names,
                       estimate(base_point, base_boot, None, 0.0, level), estimate(aug_point, aug_boot, None, 0.0, level),
                       estimate(aug_point - base_point, aug_boot - base_boot, None, 0.0, level),
                       names[int(np.argmax(means))], names[int(np.argmin(means))], "")
