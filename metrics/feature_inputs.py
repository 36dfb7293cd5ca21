"""What metric functions accept as features, and the provenance every result records.

Metric functions take FeatureSets (the normal case: they name their extractor) or plain (N, D) arrays (notebooks,
tests); two sets compared must come from the same extractor, preprocessing, weights and precision, or the
comparison is meaningless and is refused. The numerics id (precision, CPU kernel family, torch version: what decides
the last bits) is recorded, not compared: sets from two machines are comparable, only not bit-reproducible on either.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

from metrics.extractors import EXTRACTOR_INFOS
from metrics.features import FeatureSet

FeatureLike = Union[FeatureSet, np.ndarray]


@dataclass(frozen=True)
class FeatureProvenance:
    extractor_id: str
    extractor: str  # display name, e.g. "EfficientNet-Lite0 (ImageNet)"
    preprocessing_id: str
    weights_sha256: str
    feature_dim: int
    precision: str = "fp32"
    numerics: str = field(default="unspecified", compare=False)

    def label(self, metric: str) -> str:
        """'FD' -> 'FD (EfficientNet-Lite0, ImageNet)' or 'FID (Inception-V3)': the name says the network (and the
        precision when it is not fp32: 'FD (EfficientNet-Lite0, ImageNet, bf16)')."""
        info = EXTRACTOR_INFOS.get(self.extractor_id)
        if info is None:
            return f"{metric} ({self.extractor})"
        network = info.distance_label.split("(", 1)[1].rstrip(")")
        if self.precision != "fp32":
            network = f"{network}, {self.precision}"
        if metric == "FD":
            return f"{info.distance_label.split('(', 1)[0]}({network})"
        return f"{metric} ({network})"


def as_matrix(features: FeatureLike) -> np.ndarray:
    """float64 (N, D) copy-free where possible: covariance and distance work needs float64."""
    matrix = features.features if isinstance(features, FeatureSet) else np.asarray(features)
    if matrix.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("features contain NaN or inf")
    return matrix.astype(np.float64, copy=False)


def provenance_of(features: FeatureLike) -> FeatureProvenance:
    if isinstance(features, FeatureSet):
        info = EXTRACTOR_INFOS.get(features.extractor_id)
        return FeatureProvenance(
            features.extractor_id, info.display_name if info else features.extractor_id, features.preprocessing_id,
            features.weights_sha256, features.dim, features.precision, features.numerics,
        )
    dim = int(np.asarray(features).shape[1])
    return FeatureProvenance("unspecified", "unspecified features", "unspecified", "unspecified", dim)


def common_provenance(reference: FeatureLike, generated: FeatureLike) -> FeatureProvenance:
    """Provenance shared by both sets; refuses sets from different extractors, preprocessing or weights."""
    first, second = provenance_of(reference), provenance_of(generated)
    if first.feature_dim != second.feature_dim:
        raise ValueError(f"feature dimensions differ: {first.feature_dim} vs {second.feature_dim}")
    named = [p for p in (first, second) if p.extractor_id != "unspecified"]
    if len(named) == 2 and first != second:
        raise ValueError(f"the two sets were extracted differently: {first} vs {second}")
    if len(named) == 2 and first.numerics != second.numerics:
        return replace(first, numerics=f"reference: {first.numerics}; generated: {second.numerics}")
    return named[0] if named else first
