"""How far a phototype estimator can be trusted: agreement with dermatologists' Fitzpatrick labels, and a gate.

An estimator's agreement means little on its own: with most labels II-III, "always III" is already right a third
of the time and within one type almost always. So every agreement number stands beside baselines computed on the
same images: the best constant predictor (the single type that minimises the macro-averaged MAE on these labels;
the gate's baseline), the most frequent label (the constant with the best exact agreement) and a shuffled-label
baseline (the estimator's own outputs paired with permuted labels: what its marginal distribution scores by chance).

Confidence intervals resample patients, not images: the same patient (often the same lesion photographed twice)
appears several times, and resampling images would make the intervals too narrow.

The gate: an estimator counts as validated for the data it was measured on (one acquisition type) only when
- its macro-MAE beats the best constant predictor's with a paired patient-bootstrap CI of the gain above 0, and
- its Spearman rho with the labels has a patient-bootstrap CI above 0 (a constant predictor has none), and
- it gave an estimate for at least `min_coverage` of the labelled images (abstaining cannot buy agreement), and
- at least `min_compared` labelled images were compared.
Unvalidated estimates are still reported, marked as such, and never drive a pass/fail criterion (`choose_phototype`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix

from metrics.phototype import FITZPATRICK_NAMES, FITZPATRICK_TYPES, coerce_fitzpatrick, json_safe


@dataclass(frozen=True)
class BaselineAgreement:
    name: str
    exact: float
    within_one: float
    macro_mae: float
    spearman_rho: float | None  # None for a constant predictor: rank correlation is undefined
    constant_type: int | None = None  # the type a constant predictor always answers


@dataclass(frozen=True)
class AgreementReport:
    estimator: str
    acquisition: str | None
    n_labelled: int  # images with a dermatologist label
    n_compared: int  # of those, images the estimator typed (not undetermined)
    n_patients: int  # patients among the compared images: the bootstrap's unit
    coverage: float  # n_compared / n_labelled
    exact: float
    within_one: float
    spearman_rho: float
    spearman_ci: tuple[float, float]
    macro_mae: float  # mean over the label types present of each type's mean |estimate - label|
    macro_mae_ci: tuple[float, float]
    mae_per_type: dict[int, float]
    confusion: list[list[int]]  # rows: label I..VI, columns: estimate I..VI
    best_constant: BaselineAgreement  # the gate's baseline: the constant with the lowest macro-MAE
    most_frequent: BaselineAgreement  # always the commonest label: the constant with the highest exact agreement
    shuffled: BaselineAgreement  # means over the permutations
    shuffled_macro_mae_range: tuple[float, float]  # central `confidence` range over the permutations
    macro_mae_gain_ci: tuple[float, float]  # best constant's macro-MAE minus the estimator's; > 0 means better
    validated: bool
    gate: str  # why it is or is not validated, in words
    confidence: float
    n_boot: int
    seed: int

    def to_dict(self) -> dict:
        """JSON-ready (also for PostgreSQL jsonb): keys as strings, undefined values (a NaN rho) as None."""
        return json_safe(asdict(self))

    def summary_row(self) -> dict[str, object]:
        """One flat row for a table: the estimator beside both baselines."""
        return {
            "estimator": self.estimator,
            "n": self.n_compared,
            "coverage": round(self.coverage, 3),
            "exact": round(self.exact, 3),
            "within_one": round(self.within_one, 3),
            "rho": round(self.spearman_rho, 3),
            "rho_ci": tuple(round(v, 3) for v in self.spearman_ci),
            "macro_mae": round(self.macro_mae, 3),
            "const_type": FITZPATRICK_NAMES[self.best_constant.constant_type or 0],
            "const_macro_mae": round(self.best_constant.macro_mae, 3),
            "mode_exact": round(self.most_frequent.exact, 3),
            "shuffled_exact": round(self.shuffled.exact, 3),
            "shuffled_macro_mae": round(self.shuffled.macro_mae, 3),
            "gain_ci": tuple(round(v, 3) for v in self.macro_mae_gain_ci),
            "validated": self.validated,
        }


def macro_mae(labels: np.ndarray, estimates: np.ndarray) -> float:
    """Mean over the label types present of that type's mean absolute error (every type weighs the same)."""
    labels = np.asarray(labels, dtype=np.int64)
    errors = np.abs(np.asarray(estimates, dtype=np.float64) - labels)
    counts = np.bincount(labels, minlength=7)
    sums = np.bincount(labels, weights=errors, minlength=7)
    present = counts > 0
    return float(np.mean(sums[present] / counts[present]))


def mae_per_type(labels: np.ndarray, estimates: np.ndarray) -> dict[int, float]:
    errors = np.abs(np.asarray(estimates, dtype=np.float64) - labels)
    return {int(t): float(errors[labels == t].mean()) for t in np.unique(labels)}


def best_constant_type(labels: np.ndarray) -> int:
    """The type t that minimises macro_mae(labels, t); ties go to the lighter type."""
    scores = [macro_mae(labels, np.full(len(labels), t)) for t in FITZPATRICK_TYPES]
    return FITZPATRICK_TYPES[int(np.argmin(scores))]


def _constant_baseline(labels: np.ndarray, constant: int) -> BaselineAgreement:
    return BaselineAgreement(
        name=f"always {FITZPATRICK_NAMES[constant]}",
        exact=float(np.mean(labels == constant)),
        within_one=float(np.mean(np.abs(labels - constant) <= 1)),
        macro_mae=macro_mae(labels, np.full(len(labels), constant)),
        spearman_rho=None,
        constant_type=constant,
    )


def _spearman(labels: np.ndarray, estimates: np.ndarray) -> float:
    if np.ptp(labels) == 0 or np.ptp(estimates) == 0:
        return float("nan")
    return float(stats.spearmanr(labels, estimates).statistic)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def _patient_bootstrap_indices(groups: np.ndarray, n_boot: int, rng: np.random.Generator):
    """Yield image indices of n_boot resamples that draw whole patients with replacement."""
    _, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    for _ in range(n_boot):
        chosen = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[g] for g in chosen])


def agreement_report(
    labels: Sequence[object],
    estimates: Sequence[object],
    groups: Sequence[object] | None = None,
    *,
    estimator: str = "estimator",
    acquisition: str | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    n_permutations: int = 1000,
    confidence: float = 0.95,
    min_coverage: float = 0.5,
    min_compared: int = 30,
) -> AgreementReport:
    """Agreement of `estimates` with dermatologist `labels`, one entry per image.

    labels / estimates: Fitzpatrick types 1-6 (ints, roman numerals, PhototypeEstimate objects); None/NaN marks an
    unlabelled image (skipped) or an undetermined estimate (lowers coverage). groups: patient ids for the bootstrap;
    without them every image counts as its own patient.
    """
    typed_labels = [coerce_fitzpatrick(v) for v in labels]
    typed_estimates = [coerce_fitzpatrick(v) for v in estimates]
    if len(typed_labels) != len(typed_estimates):
        raise ValueError(f"{len(typed_labels)} labels but {len(typed_estimates)} estimates")
    group_ids = np.asarray(list(groups) if groups is not None else range(len(typed_labels)), dtype=object)
    if len(group_ids) != len(typed_labels):
        raise ValueError("groups must have one entry per image")

    labelled = [i for i, v in enumerate(typed_labels) if v is not None]
    compared = [i for i in labelled if typed_estimates[i] is not None]
    if len(compared) < 2:
        raise ValueError(f"need at least 2 labelled and estimated images, got {len(compared)}")
    y = np.array([typed_labels[i] for i in compared], dtype=np.int64)
    e = np.array([typed_estimates[i] for i in compared], dtype=np.int64)
    g = np.array([str(v) for v in group_ids[compared]])
    rng = np.random.default_rng(seed)

    constant = best_constant_type(y)
    constant_predictions = np.full(len(y), constant)
    commonest = int(np.bincount(y).argmax())

    boot_rho, boot_mae, boot_gain = [], [], []
    for idx in _patient_bootstrap_indices(g, n_boot, rng):
        mae = macro_mae(y[idx], e[idx])
        boot_rho.append(_spearman(y[idx], e[idx]))
        boot_mae.append(mae)
        boot_gain.append(macro_mae(y[idx], constant_predictions[idx]) - mae)

    perm = {"exact": [], "within_one": [], "macro_mae": [], "rho": []}
    for _ in range(n_permutations):
        shuffled_labels = rng.permutation(y)
        perm["exact"].append(np.mean(shuffled_labels == e))
        perm["within_one"].append(np.mean(np.abs(shuffled_labels - e) <= 1))
        perm["macro_mae"].append(macro_mae(shuffled_labels, e))
        perm["rho"].append(_spearman(shuffled_labels, e))

    rho = _spearman(y, e)
    spearman_ci = _interval(np.array(boot_rho), confidence)
    gain_ci = _interval(np.array(boot_gain), confidence)
    coverage = len(compared) / len(labelled)
    validated, gate = _apply_gate(spearman_ci, gain_ci, coverage, len(compared), min_coverage, min_compared)

    return AgreementReport(
        estimator=estimator,
        acquisition=acquisition,
        n_labelled=len(labelled),
        n_compared=len(compared),
        n_patients=len(np.unique(g)),
        coverage=coverage,
        exact=float(np.mean(y == e)),
        within_one=float(np.mean(np.abs(y - e) <= 1)),
        spearman_rho=rho,
        spearman_ci=spearman_ci,
        macro_mae=macro_mae(y, e),
        macro_mae_ci=_interval(np.array(boot_mae), confidence),
        mae_per_type=mae_per_type(y, e),
        confusion=confusion_matrix(y, e, labels=list(FITZPATRICK_TYPES)).tolist(),
        best_constant=_constant_baseline(y, constant),
        most_frequent=_constant_baseline(y, commonest),
        shuffled=BaselineAgreement(
            name="shuffled labels",
            exact=float(np.mean(perm["exact"])),
            within_one=float(np.mean(perm["within_one"])),
            macro_mae=float(np.mean(perm["macro_mae"])),
            spearman_rho=float(np.nanmean(perm["rho"])) if np.isfinite(perm["rho"]).any() else None,
        ),
        shuffled_macro_mae_range=_interval(np.array(perm["macro_mae"]), confidence),
        macro_mae_gain_ci=gain_ci,
        validated=validated,
        gate=gate,
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
    )


def _apply_gate(
    spearman_ci: tuple[float, float],
    gain_ci: tuple[float, float],
    coverage: float,
    n_compared: int,
    min_coverage: float,
    min_compared: int,
) -> tuple[bool, str]:
    failures = []
    if n_compared < min_compared:
        failures.append(f"only {n_compared} labelled images compared (< {min_compared})")
    if coverage < min_coverage:
        failures.append(f"estimates for only {coverage:.0%} of labelled images (< {min_coverage:.0%})")
    if not gain_ci[0] > 0:
        failures.append(
            f"macro-MAE gain over the best constant predictor has CI [{gain_ci[0]:.3f}, {gain_ci[1]:.3f}], "
            "which does not exclude 0"
        )
    if not spearman_ci[0] > 0:
        failures.append(f"Spearman rho CI [{spearman_ci[0]:.3f}, {spearman_ci[1]:.3f}] does not exclude 0")
    if failures:
        return False, "not validated: " + "; ".join(failures)
    return True, "validated: beats the best constant predictor and correlates with labels (patient-bootstrap CIs)"


def agreement_by_acquisition(
    labels: Sequence[object],
    estimates: Sequence[object],
    groups: Sequence[object] | None,
    acquisitions: Sequence[str],
    **kwargs,
) -> dict[str, AgreementReport]:
    """One report (and gate decision) per acquisition type (e.g. "dermoscopic", "clinical")."""
    reports = {}
    for acquisition in sorted(set(acquisitions)):
        idx = [i for i, a in enumerate(acquisitions) if a == acquisition]
        reports[acquisition] = agreement_report(
            [labels[i] for i in idx],
            [estimates[i] for i in idx],
            [groups[i] for i in idx] if groups is not None else None,
            acquisition=acquisition,
            **kwargs,
        )
    return reports


@dataclass(frozen=True)
class PhototypeAssignment:
    """The phototype an audit uses for one image, and where it came from."""

    fitzpatrick: int | None
    source: Literal["dermatologist", "estimate", "undetermined"]
    method: str | None  # estimator method when source == "estimate"
    validated: bool  # dermatologist labels are the reference; estimates are validated only through the gate
    may_drive_pass_fail: bool

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


def choose_phototype(
    label: object, estimate: object, *, method: str | None, estimator_validated: bool
) -> PhototypeAssignment:
    """Dermatologist label when present, otherwise the chosen estimator's estimate, always saying which."""
    typed_label = coerce_fitzpatrick(label)
    if typed_label is not None:
        return PhototypeAssignment(typed_label, "dermatologist", None, True, True)
    typed_estimate = coerce_fitzpatrick(estimate)
    if typed_estimate is None:
        return PhototypeAssignment(None, "undetermined", method, estimator_validated, False)
    return PhototypeAssignment(typed_estimate, "estimate", method, estimator_validated, estimator_validated)
