"""Inception Score and Mode Score from the extractor's own ImageNet classifier head.

Named after the network actually used: with the default extractor these are "Inception Score (EfficientNet-Lite0
ImageNet head)", not the Inception-V3 numbers of the literature. The logits come from the same pooled features the
other metrics use (the head is linear), so no second forward pass is needed.

IS = exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), computed like torchmetrics' InceptionScore: mean and std
over `splits` chunks of a random permutation. Mode Score = exp(E_x KL(p(y|x) || p_ref(y)) - KL(p(y) || p_ref(y)))
(Che et al., "Mode Regularized GANs", ICLR 2017), p_ref the class marginal of the reference set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special

from metrics.extractors import get_extractor
from metrics.feature_inputs import FeatureProvenance, provenance_of
from metrics.features import FeatureSet
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    jackknife_interval,
    limited_blas_threads,
    resolve_seed,
)

CAVEAT = (
    "ImageNet classes are not dermatology classes: these scores say how confidently and how variously an ImageNet "
    "classifier labels the images (mostly as a handful of non-medical classes), not whether lesions look real. "
    "Use them only to compare generators on the same data, never as evidence of clinical realism."
)


@dataclass(frozen=True)
class ClassifierScoreResult(JsonResult):
    label: str
    value: float  # mean over splits
    split_std: float
    full_sample_value: float
    ci: ConfidenceInterval | None  # jackknife interval around the full-sample value
    splits: int
    n: int
    classifier: str
    caveat: str
    provenance: FeatureProvenance
    seed: int


def _chunks(n: int, splits: int) -> list[np.ndarray]:
    """torch.chunk's split: chunks of ceil(n / splits) rows, the last one shorter."""
    size = -(-n // splits)
    return [np.arange(start, min(start + size, n)) for start in range(0, n, size)]


def inception_score_from_logits(logits: np.ndarray) -> float:
    log_p = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=1)
    p = np.exp(log_p)
    log_marginal = np.log(p.mean(axis=0))
    return float(np.exp(np.mean(np.sum(p * (log_p - log_marginal), axis=1))))


def mode_score_from_logits(logits: np.ndarray, reference_logits: np.ndarray) -> float:
    log_p = scipy.special.log_softmax(np.asarray(logits, np.float64), axis=1)
    p = np.exp(log_p)
    log_reference = np.log(np.exp(scipy.special.log_softmax(np.asarray(reference_logits, np.float64), axis=1)).mean(axis=0))
    marginal = p.mean(axis=0)
    expected_kl = np.mean(np.sum(p * (log_p - log_reference), axis=1))
    marginal_kl = np.sum(marginal * (np.log(marginal) - log_reference))
    return float(np.exp(expected_kl - marginal_kl))


def _logits_of(features: FeatureSet | np.ndarray, logits: np.ndarray | None) -> np.ndarray:
    if logits is not None:
        return np.asarray(logits, np.float64)
    if not isinstance(features, FeatureSet):
        raise ValueError("pass a FeatureSet (its extractor's classifier head is used) or explicit logits")
    return get_extractor(features.extractor_id).logits_from_features(features.features)


def _score(
    name: str,
    score: callable,
    logits: np.ndarray,
    provenance: FeatureProvenance,
    seed: Seed,
    splits: int,
    n_jackknife_groups: int,
    confidence: float,
) -> ClassifierScoreResult:
    if len(logits) < max(2, splits):
        raise InsufficientSamplesError(f"{name} needs at least {max(2, splits)} images, got {len(logits)}")
    recorded_seed, rng = resolve_seed(seed)
    shuffled = logits[rng.permutation(len(logits))]
    per_split = np.array([score(shuffled[chunk]) for chunk in _chunks(len(logits), splits)])
    full = score(logits)
    ci = None
    groups = min(n_jackknife_groups, len(logits) // 2)
    if groups >= 2:
        parts = np.array_split(rng.permutation(len(logits)), groups)
        values = np.array([score(np.delete(logits, part, axis=0)) for part in parts])
        _, ci = jackknife_interval(full, values, confidence, "; around the full-sample value")
    from metrics.extractors import EXTRACTOR_INFOS

    info = EXTRACTOR_INFOS.get(provenance.extractor_id)
    head = info.classifier if info else "classifier logits supplied by the caller"
    return ClassifierScoreResult(
        label=f"{name} ({provenance.extractor} classifier head)",
        value=float(per_split.mean()),
        split_std=float(per_split.std(ddof=1)) if len(per_split) > 1 else 0.0,
        full_sample_value=full,
        ci=ci,
        splits=len(per_split),
        n=len(logits),
        classifier=head,
        caveat=CAVEAT,
        provenance=provenance,
        seed=recorded_seed,
    )


@limited_blas_threads
def compute_inception_score(
    generated: FeatureSet | np.ndarray,
    *,
    seed: Seed,
    logits: np.ndarray | None = None,
    splits: int = 10,
    n_jackknife_groups: int = 10,
    confidence: float = 0.95,
) -> ClassifierScoreResult:
    """Inception Score of the generated set from its features (or explicit `logits`)."""
    return _score(
        "Inception Score", inception_score_from_logits, _logits_of(generated, logits), provenance_of(generated),
        seed, splits, n_jackknife_groups, confidence,
    )


@limited_blas_threads
def compute_mode_score(
    reference: FeatureSet | np.ndarray,
    generated: FeatureSet | np.ndarray,
    *,
    seed: Seed,
    reference_logits: np.ndarray | None = None,
    generated_logits: np.ndarray | None = None,
    splits: int = 10,
    n_jackknife_groups: int = 10,
    confidence: float = 0.95,
) -> ClassifierScoreResult:
    """Mode Score of the generated set against the reference set's class marginal."""
    ref_logits = _logits_of(reference, reference_logits)
    return _score(
        "Mode Score", lambda chunk: mode_score_from_logits(chunk, ref_logits), _logits_of(generated, generated_logits),
        provenance_of(generated), seed, splits, n_jackknife_groups, confidence,
    )
