"""Fitness for purpose: does adding these synthetic images to the training data help a classifier on real images?

    >>> result = evaluate_utility(real_features, real_labels, real_groups, synthetic_features, synthetic_labels,
    ...                           subgroups={"phototype": fitzpatrick_or_none}, seed=0)
    >>> result.decision.gain_ci.low  # lower 95 % bound of the AUROC gain at the deciding ratio

The design (Ravuri & Vinyals 2019's classification accuracy score, and the augmentation studies of dermatology):
real images are cut into repeated, grouped, stratified folds (metrics.utility.splits). **Test folds hold real
images only; synthetic images only ever train.** In every fold the same classifier is trained under each condition
and scored on the same real test images:

- real only (TRTR): the fold's real training set, the yardstick;
- synthetic only (TSTR): as many synthetic images as the real training set has (else all), same test images;
- augmented: the real training set plus synthetic images at ratios 0.25 ... 4 of its size (as far as the set
  allows; class mix as chosen), the **gain** being augmented minus real only on the same test images;
- real added (negative control and the curve beside the synthetic one): the real training set plus *held-out real*
  images with their true labels at the same ratios — what a perfect generator would give;
- swapped (positive control): the synthetic images at the deciding ratio with every label replaced by another
  class — what a harmful set does; if it does not move the figure past the margin, the test lacks power there;
- all real: the real training set and the whole held-out pool, for the label consistency of real images.

Figures: AUROC (macro one-vs-rest above two classes), balanced accuracy, and sensitivity at 90 % specificity for
the high-risk classes. Each with a paired cluster-bootstrap CI over real test images and a Nadeau-Bengio CI over the
folds (metrics.utility.inference). Per subgroup of the real test images (phototype, acquisition, ...): each figure,
its gain, and the fairness gap (best - worst powered subgroup) with and without the synthetic images. Label
consistency (TRTS): a classifier trained on every real image labels the synthetic ones; per class, the share given
its own label, beside the same figure for real images scored out of fold.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metrics.results import InsufficientSamplesError, limited_blas_threads
from metrics.utility.classifiers import LinearProbe
from metrics.utility.inference import cluster_bootstrap_weights, paired_delong
from metrics.utility.results import Condition, Decision, Estimate, UtilityResult, estimate, figures_matrix
from metrics.utility.scoring import METRICS, classifier_metrics
from metrics.utility.splits import repeated_splits
from metrics.utility.subgroups import label_consistency, subgroup_figures

CURVE_RATIOS = (0.25, 0.5, 1.0, 2.0, 4.0)
CLASS_MIXES = ("real", "balanced", "generated")
# Diagnoses counted as high-risk (malignant) when the caller names none: ISIC and PAD-UFES-20 spellings.
DEFAULT_HIGH_RISK = frozenset({"melanoma", "mel", "malignant", "bcc", "basal cell carcinoma", "scc",
                               "squamous cell carcinoma"})


@dataclass(frozen=True)
class UtilityDesign:
    folds: int = 5
    repeats: int = 5
    ratios: tuple[float, ...] = CURVE_RATIOS
    decision_ratio: float | str = 1.0  # a ratio, or "own": the generated set's size over the real training set's
    class_mix: str = "real"  # synthetic images per class: as the real training set, equal, or as generated
    n_bootstrap: int = 1000
    min_subgroup_n: int = 30
    min_subgroup_class_n: int = 5
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.class_mix not in CLASS_MIXES:
            raise ValueError(f"class_mix must be one of {CLASS_MIXES}, got {self.class_mix!r}")
        if self.decision_ratio != "own" and not (isinstance(self.decision_ratio, (int, float))
                                                 and 0 < float(self.decision_ratio) <= max(self.ratios)):
            raise ValueError(f"decision_ratio must be 'own' or a number in (0, {max(self.ratios)}]")
        if self.folds < 2 or self.repeats < 1:
            raise ValueError("at least 2 folds and 1 repeat")


def _allocate(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to `total`, proportional to `shares` (largest remainders)."""
    exact = total * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    for index in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[index] += 1
    return counts


class _Draws:
    """Per split, a fixed random order of each class's rows of a pool; a draw at a larger ratio extends a smaller
    one (nested draws make the curve smoother without changing any single point's expectation)."""

    def __init__(self, pool: np.ndarray, labels: np.ndarray, n_classes: int, rng: np.random.Generator):
        self.by_class = [rng.permutation(pool[labels[pool] == c]) for c in range(n_classes)]

    def available(self) -> np.ndarray:
        return np.array([len(rows) for rows in self.by_class])

    def take(self, counts: np.ndarray) -> np.ndarray | None:
        if np.any(counts > self.available()):
            return None
        return np.concatenate([rows[:k] for rows, k in zip(self.by_class, counts)]).astype(np.int64)


def _shares(mix: str, real_train_counts: np.ndarray, pool_counts: np.ndarray) -> np.ndarray:
    if mix == "real":
        return real_train_counts.astype(np.float64)
    if mix == "balanced":
        return np.ones(len(real_train_counts))
    return pool_counts.astype(np.float64)


def _ratio_counts(ratio: float, n_train: int, shares: np.ndarray) -> np.ndarray:
    return _allocate(int(round(ratio * n_train)), shares)


def _swap(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Every label replaced by another class: swapped for two classes, shifted by one for more."""
    return (labels + 1) % n_classes


@dataclass
class _Run:
    """Out-of-fold class probabilities of one condition: (repeats, n_real, n_classes), plus the split's sizes."""

    key: str
    kind: str
    ratio: float | None
    label: str
    probabilities: np.ndarray
    n_real_train: list[int] = field(default_factory=list)
    n_added: list[int] = field(default_factory=list)


def _per_fold(labels, probabilities, high_risk, splits, positive_class) -> dict[str, np.ndarray]:
    masks = np.zeros((len(splits), len(labels)))
    for index, split in enumerate(splits):
        masks[index, split.test] = 1.0
    values = {m: [] for m in METRICS}
    for repeat in sorted({s.repeat for s in splits}):
        rows = [i for i, s in enumerate(splits) if s.repeat == repeat]
        figures = classifier_metrics(labels, probabilities[repeat], high_risk, masks[rows], positive_class)
        for m in METRICS:
            values[m].extend(figures[m].tolist())
    return {m: np.asarray(v) for m, v in values.items()}


@limited_blas_threads
def evaluate_utility(
    real_x: np.ndarray,
    real_labels: Sequence[str],
    real_groups: Sequence,
    synthetic_x: np.ndarray,
    synthetic_labels: Sequence[str],
    *,
    subgroups: dict[str, Sequence[str | None]] | None = None,
    high_risk_classes: Sequence[str] | None = None,
    classifier=None,
    design: UtilityDesign | None = None,
    seed: int = 0,
) -> UtilityResult:
    """The utility of a labelled synthetic set for a classifier of the real images' classes (see the module doc).

    real_x / synthetic_x: one row per image (features for the linear probe, whatever `classifier` reads otherwise).
    real_labels / synthetic_labels: class names; synthetic images whose class no real image has are left out and
    counted. real_groups: lesion/patient of each real image (never split across folds). subgroups: field -> one
    value per real image (None = unknown), e.g. {"phototype": [...], "acquisition": [...]}."""
    started = time.perf_counter()
    design = design or UtilityDesign()
    classifier = classifier or LinearProbe()
    real_labels = np.asarray([str(v) for v in real_labels])
    synthetic_labels = np.asarray([str(v) for v in synthetic_labels])
    if len(real_labels) != len(real_x) or len(synthetic_labels) != len(synthetic_x):
        raise ValueError("one label per image is needed, for the real and for the synthetic images")
    classes = sorted(set(real_labels.tolist()))
    if len(classes) < 2:
        raise InsufficientSamplesError(f"the real images carry {len(classes)} class(es); a classifier needs two")
    usable = np.isin(synthetic_labels, classes)
    excluded = {str(k): int(v) for k, v in zip(*np.unique(synthetic_labels[~usable], return_counts=True))}
    synthetic_x, synthetic_labels = synthetic_x[usable], synthetic_labels[usable]
    index = {name: i for i, name in enumerate(classes)}
    y_real = np.array([index[v] for v in real_labels], dtype=np.int64)
    y_syn = np.array([index[v] for v in synthetic_labels], dtype=np.int64)
    n_classes, n_real = len(classes), len(y_real)
    wanted = {str(c).lower() for c in high_risk_classes} if high_risk_classes else DEFAULT_HIGH_RISK
    high_risk = np.array([c.lower() in wanted for c in classes])
    positive_class = int(np.flatnonzero(high_risk)[0]) if n_classes == 2 and high_risk.sum() == 1 else 1
    syn_counts = np.bincount(y_syn, minlength=n_classes)
    if design.class_mix != "generated" and (missing := [classes[c] for c in range(n_classes) if syn_counts[c] == 0]):
        raise InsufficientSamplesError(
            f"the generated set has no labelled image of class(es) {missing}; with class mix {design.class_mix!r} "
            "every class needs synthetic images (or choose the class mix 'generated')")

    splits = repeated_splits(y_real, real_groups, folds=design.folds, repeats=design.repeats, seed=seed)
    repeats = design.repeats
    draws = []  # per split: (synthetic draws, held-out real draws, shares for each)
    for split in splits:
        rng = np.random.default_rng([split.seed, split.fold, 7])
        train_counts = np.bincount(y_real[split.train], minlength=n_classes)
        syn = _Draws(np.arange(len(y_syn)), y_syn, n_classes, rng)
        real = _Draws(split.held_out, y_real, n_classes, rng)
        draws.append((syn, real, _shares(design.class_mix, train_counts, syn_counts),
                      _shares(design.class_mix, train_counts, train_counts)))

    def allowed(ratio: float, real_pool: bool) -> bool:
        return all((real if real_pool else syn).take(_ratio_counts(ratio, len(split.train), real_shares if real_pool
                                                                    else syn_shares)) is not None
                   for split, (syn, real, syn_shares, real_shares) in zip(splits, draws))

    ratios = [r for r in design.ratios if allowed(r, False)]
    real_ratios = [r for r in design.ratios if allowed(r, True)]
    if not ratios:
        raise InsufficientSamplesError(
            f"the generated set's labelled images per class {dict(zip(classes, syn_counts.tolist()))} are too few to "
            f"add even {design.ratios[0]} synthetic images per real training image with class mix {design.class_mix!r}")
    mean_train = float(np.mean([len(s.train) for s in splits]))
    requested = design.decision_ratio
    target = (round(len(y_syn) / mean_train, 2) if requested == "own" else float(requested))
    target = min(target, max(design.ratios))
    notes = []
    if allowed(target, False):
        decision_ratio, decision_note = target, ""
    else:
        decision_ratio = max(r for r in ratios if r <= target) if any(r <= target for r in ratios) else ratios[0]
        decision_note = (f"the generated set is too small for {target:g} synthetic images per real training image "
                         f"with class mix {design.class_mix!r}; decided at {decision_ratio:g}")
        notes.append(decision_note)
    curve = sorted(set(ratios) | {decision_ratio})
    negative_ratio = decision_ratio if allowed(decision_ratio, True) else max(
        [r for r in real_ratios if r <= decision_ratio], default=None)
    if negative_ratio is not None and negative_ratio != decision_ratio:
        notes.append(f"the held-out real pool holds too few images for {decision_ratio:g} per real training image: the "
                     f"negative control added {negative_ratio:g}")
    real_curve = sorted(set(real_ratios) | ({negative_ratio} if negative_ratio is not None else set()))
    tstr_ratio = 1.0 if allowed(1.0, False) else max(ratios)

    runs: dict[str, _Run] = {}

    def run(key: str, kind: str, ratio: float | None, label: str) -> _Run:
        if key not in runs:
            runs[key] = _Run(key, kind, ratio, label, np.zeros((repeats, n_real, n_classes)))
        return runs[key]

    for split, (syn, real, syn_shares, real_shares) in zip(splits, draws):
        fit_seed = int(np.random.SeedSequence([split.seed, split.fold, 11]).generate_state(1)[0])
        transform = classifier.representation(real_x[split.train])
        x_train, x_test = transform(real_x[split.train]), transform(real_x[split.test])
        y_train = y_real[split.train]

        def score(entry: _Run, x: np.ndarray, y: np.ndarray, n_added: int, test=x_test) -> None:
            predict = classifier.fit(x, y, n_classes, fit_seed)
            entry.probabilities[split.repeat, split.test] = predict(test)
            entry.n_real_train.append(len(split.train) if entry.kind != "synthetic_only" else 0)
            entry.n_added.append(n_added)

        score(run("real_only", "real_only", None, "real training set only"), x_train, y_train, 0)
        for ratio in curve:
            rows = syn.take(_ratio_counts(ratio, len(split.train), syn_shares))
            added = transform(synthetic_x[rows])
            score(run(f"augmented@{ratio:g}", "augmented", ratio, f"real + {ratio:g}x synthetic"),
                  np.vstack([x_train, added]), np.concatenate([y_train, y_syn[rows]]), len(rows))
            if ratio == decision_ratio:
                score(run(f"swapped@{ratio:g}", "swapped", ratio,
                          f"real + {ratio:g}x synthetic, labels swapped (positive control)"),
                      np.vstack([x_train, added]), np.concatenate([y_train, _swap(y_syn[rows], n_classes)]), len(rows))
            if ratio == tstr_ratio:
                own = classifier.representation(synthetic_x[rows])
                score(run("synthetic_only", "synthetic_only", ratio, "synthetic images only (TSTR)"),
                      own(synthetic_x[rows]), y_syn[rows], len(rows), test=own(real_x[split.test]))
        for ratio in real_curve:
            rows = real.take(_ratio_counts(ratio, len(split.train), real_shares))
            score(run(f"real_added@{ratio:g}", "real_added", ratio, f"real + {ratio:g}x held-out real"),
                  np.vstack([x_train, transform(real_x[rows])]), np.concatenate([y_train, y_real[rows]]), len(rows))
        score(run("all_real", "all_real", None, "real training set + the whole held-out real pool"),
              np.vstack([x_train, transform(real_x[split.held_out])]),
              np.concatenate([y_train, y_real[split.held_out]]), len(split.held_out))

    rng = np.random.default_rng([int(seed), 13])
    weights = cluster_bootstrap_weights(real_groups, design.n_bootstrap, rng, labels=y_real)
    test_train = float(np.mean([len(s.test) for s in splits])) / mean_train
    ones = np.ones((1, n_real))
    point = {k: figures_matrix(y_real, r.probabilities, high_risk, ones, positive_class) for k, r in runs.items()}
    boot = {k: figures_matrix(y_real, r.probabilities, high_risk, weights, positive_class) for k, r in runs.items()}
    folds = {k: _per_fold(y_real, r.probabilities, high_risk, splits, positive_class) for k, r in runs.items()}

    def estimates(key: str, minus: str | None = None) -> dict[str, Estimate]:
        out = {}
        for m in METRICS:
            p, b, f = point[key][m][:, 0], boot[key][m], folds[key][m]
            if minus is not None:
                p, b, f = p - point[minus][m][:, 0], b - boot[minus][m], f - folds[minus][m]
            out[m] = estimate(p, b, f, test_train, design.level)
        return out

    conditions = [Condition(r.key, r.kind, r.ratio, r.label, float(np.mean(r.n_real_train)), float(np.mean(r.n_added)),
                            estimates(r.key), None if r.key == "real_only" else estimates(r.key, "real_only"))
                  for r in runs.values()]
    by_key = {c.key: c for c in conditions}
    decision_key = f"augmented@{decision_ratio:g}"
    gain = by_key[decision_key].gain["auroc"]
    negative = by_key.get(f"real_added@{negative_ratio:g}") if negative_ratio is not None else None
    positive = by_key[f"swapped@{decision_ratio:g}"].gain["auroc"]
    delong = None
    if n_classes == 2:
        first = runs["real_only"].probabilities[0][:, positive_class]
        second = runs[decision_key].probabilities[0][:, positive_class]
        delong = paired_delong(y_real == positive_class, first, second, design.level)
    decision = Decision(
        requested, decision_ratio, decision_note, gain.value, gain.ci, negative_ratio,
        negative.gain["auroc"].value if negative else None, negative.gain["auroc"].ci if negative else None,
        positive.value, positive.ci, delong)

    consistency = label_consistency(classifier, real_x, y_real, synthetic_x, y_syn, runs["all_real"], classes, seed)
    subgroup_rows, fairness = subgroup_figures(subgroups or {}, y_real, classes, high_risk, positive_class, weights, runs,
                                         decision_key, f"real_added@{negative_ratio:g}" if negative else None, design)
    return UtilityResult(
        classifier=classifier.describe(), classes=classes, high_risk_classes=[c for c, h in zip(classes, high_risk) if h],
        n_real=n_real, n_synthetic=len(y_syn),
        real_by_class=dict(zip(classes, np.bincount(y_real, minlength=n_classes).tolist())),
        synthetic_by_class=dict(zip(classes, syn_counts.tolist())), synthetic_excluded=excluded,
        design={"folds": design.folds, "repeats": design.repeats, "ratios": list(design.ratios),
                "decision_ratio": design.decision_ratio, "class_mix": design.class_mix,
                "n_bootstrap": design.n_bootstrap, "min_subgroup_n": design.min_subgroup_n,
                "min_subgroup_class_n": design.min_subgroup_class_n, "level": design.level, "seed": int(seed),
                "real_training_set": "half of each fold's training side (by lesion/patient, stratified); the other "
                                     "half is the held-out real pool"},
        seeds=[s.seed for s in splits if s.fold == 0], ratios=ratios,
        real_ratios=real_ratios, conditions=conditions, decision=decision, label_consistency=consistency,
        subgroups=subgroup_rows, fairness=fairness, seconds=time.perf_counter() - started, notes=notes)
