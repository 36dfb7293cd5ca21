"""A learned phototype estimator: ordinal (or multinomial) regression on image features plus skin-colour statistics.

Trained on whichever dermatologist-labelled reference images the user has. Its inputs are plain arrays so that it
does not depend on any one feature extractor: `features` (N, D) from the default extractor (metrics.features), and
optionally `colour_stats` (N, C), e.g. colour_statistics(estimate_phototypes(...)). The deep features are
standardised and reduced by PCA (a 1,280-dimensional vector against a few hundred labels would only be memorised);
the colour statistics bypass the PCA so they are not drowned by 1,280 other columns.

Models: "ordinal" is a proportional-odds logistic model (statsmodels OrderedModel, unpenalised maximum likelihood),
the natural model for ordered types; "multinomial" is an L2-penalised multinomial logistic regression (sklearn).
Predictions are the median of the predictive distribution, which minimises the expected absolute error in types.

The fitted estimator serialises to a JSON-compatible dict (to_dict / from_dict) so it can be stored with the audit
that trained it and reused; put the extractor id, weights hash and the cross-validated AgreementReport into
`metadata` so that every later use carries how far it can be trusted.

Measure it with patient-grouped cross-validation (cross_validated_predictions) and phototype_validation, never on
its own training images.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.tools.sm_exceptions import HessianInversionWarning

from metrics.phototype import PhototypeEstimate, individual_typology_angle, json_safe

FORMAT = "dermaudit.phototype-learned/1"
COLOUR_STATISTIC_NAMES: tuple[str, ...] = ("median_L", "median_a", "median_b", "ita_of_median", "skin_fraction")


def colour_statistics(estimates: Sequence[PhototypeEstimate]) -> np.ndarray:
    """(N, 5) float64: median L*, a*, b* of the skin pixels, ITA of that median colour, skin fraction.

    NaN where no skin colour was measured. Undetermined estimates still contribute their measured colour: a colour
    cast is information for a learned model even though ITA cannot be trusted on it.
    """
    rows = []
    for estimate in estimates:
        if estimate.median_lab is None:
            rows.append([np.nan] * 4 + [estimate.skin_fraction])
            continue
        lightness, a_star, b_star = estimate.median_lab
        ita = float(individual_typology_angle(lightness, b_star))
        rows.append([lightness, a_star, b_star, ita, estimate.skin_fraction])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(COLOUR_STATISTIC_NAMES))


def _as_matrix(values: np.ndarray | None, n_rows: int | None, name: str) -> np.ndarray | None:
    if values is None:
        return None
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {matrix.shape}")
    if n_rows is not None and len(matrix) != n_rows:
        raise ValueError(f"{name} has {len(matrix)} rows, expected {n_rows}")
    return matrix


@dataclass
class LearnedPhototypeEstimator:
    model: Literal["ordinal", "multinomial"] = "ordinal"
    n_components: int = 16  # PCA components kept from the deep features
    regularisation: float = 1.0  # inverse L2 strength (sklearn's C); multinomial only
    class_weight: Literal["balanced"] | None = None  # multinomial only
    seed: int = 0
    metadata: dict = field(default_factory=dict)
    state: dict | None = None  # the fitted parameters; None until fit

    @property
    def method(self) -> str:
        return f"learned-{self.model}/v1"

    @property
    def classes(self) -> np.ndarray:
        self._require_fitted()
        return np.asarray(self.state["classes"], dtype=np.int64)

    def _require_fitted(self) -> None:
        if self.state is None:
            raise RuntimeError("the estimator is not fitted")

    # ---- design matrix: standardise, PCA the deep block, impute and standardise the colour block ----

    def _fit_design(self, features: np.ndarray | None, colour_stats: np.ndarray | None) -> None:
        state: dict = {"deep_dim": 0, "colour_dim": 0}
        if features is not None:
            mean = features.mean(axis=0)
            scale = features.std(axis=0)
            scale[scale == 0] = 1.0
            standardised = (features - mean) / scale
            n_components = min(self.n_components, features.shape[0] - 1, features.shape[1])
            pca = PCA(n_components=n_components, whiten=True, svd_solver="full", random_state=self.seed)
            pca.fit(standardised)
            state.update(
                deep_dim=features.shape[1],
                deep_mean=mean.tolist(),
                deep_scale=scale.tolist(),
                pca_mean=pca.mean_.tolist(),
                pca_components=pca.components_.tolist(),
                pca_scale=np.sqrt(pca.explained_variance_).tolist(),
            )
        if colour_stats is not None:
            medians = np.nanmedian(colour_stats, axis=0)
            medians = np.where(np.isnan(medians), 0.0, medians)
            imputed = np.where(np.isnan(colour_stats), medians, colour_stats)
            scale = imputed.std(axis=0)
            scale[scale == 0] = 1.0
            state.update(
                colour_dim=colour_stats.shape[1],
                colour_median=medians.tolist(),
                colour_mean=imputed.mean(axis=0).tolist(),
                colour_scale=scale.tolist(),
            )
        self.state = state

    def design_matrix(self, features: np.ndarray | None, colour_stats: np.ndarray | None = None) -> np.ndarray:
        """The standardised model inputs for new images (whitened PCA scores, then colour statistics)."""
        self._require_fitted()
        state = self.state
        n_rows = len(features) if features is not None else (len(colour_stats) if colour_stats is not None else None)
        features = _as_matrix(features, n_rows, "features")
        colour_stats = _as_matrix(colour_stats, n_rows, "colour_stats")
        blocks = []
        for given, dim_key, name in ((features, "deep_dim", "features"), (colour_stats, "colour_dim", "colour_stats")):
            expected = state[dim_key]
            got = 0 if given is None else given.shape[1]
            if got != expected:
                raise ValueError(f"{name}: the estimator was fitted with {expected} columns, got {got}")
        if features is not None:
            standardised = (features - np.asarray(state["deep_mean"])) / np.asarray(state["deep_scale"])
            scores = (standardised - np.asarray(state["pca_mean"])) @ np.asarray(state["pca_components"]).T
            blocks.append(scores / np.asarray(state["pca_scale"]))
        if colour_stats is not None:
            imputed = np.where(np.isnan(colour_stats), np.asarray(state["colour_median"]), colour_stats)
            blocks.append((imputed - np.asarray(state["colour_mean"])) / np.asarray(state["colour_scale"]))
        return np.hstack(blocks)

    # ---- fitting and prediction ----

    def fit(
        self, features: np.ndarray | None, labels: Sequence[int], colour_stats: np.ndarray | None = None
    ) -> LearnedPhototypeEstimator:
        """Fit on labelled images only: labels are Fitzpatrick types 1-6, one per row."""
        y = np.asarray(labels, dtype=np.int64)
        features = _as_matrix(features, len(y), "features")
        colour_stats = _as_matrix(colour_stats, len(y), "colour_stats")
        if features is None and colour_stats is None:
            raise ValueError("give features, colour_stats or both")
        if not np.isin(y, np.arange(1, 7)).all():
            raise ValueError("labels must be Fitzpatrick types 1-6 (drop unlabelled images before fitting)")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError("need at least two different types to learn anything")
        self._fit_design(features, colour_stats)
        design = self.design_matrix(features, colour_stats)
        self.state["classes"] = classes.tolist()
        self.state["n_train"] = int(len(y))
        self.state["train_counts"] = {str(int(c)): int((y == c).sum()) for c in classes}
        if self.model == "ordinal":
            with warnings.catch_warnings():
                # Standard errors are never used, so a singular Hessian (common near separation) does not matter.
                warnings.simplefilter("ignore", HessianInversionWarning)
                fitted = OrderedModel(y, design, distr="logit").fit(method="bfgs", disp=False, maxiter=2000)
            converged = bool(fitted.mle_retvals.get("converged", False))
            if not converged:
                warnings.warn("ordinal model did not converge; consider fewer PCA components", RuntimeWarning)
            n_features = design.shape[1]
            cutpoints = fitted.model.transform_threshold_params(fitted.params)[1:-1]
            self.state.update(
                coef=fitted.params[:n_features].tolist(), cutpoints=cutpoints.tolist(), converged=converged
            )
        elif self.model == "multinomial":
            fitted = LogisticRegression(
                C=self.regularisation, class_weight=self.class_weight, max_iter=5000, random_state=self.seed
            ).fit(design, y)
            self.state.update(coef=fitted.coef_.tolist(), intercept=fitted.intercept_.tolist())
        else:
            raise ValueError(f"unknown model {self.model!r}")
        return self

    def predict_proba(self, features: np.ndarray | None, colour_stats: np.ndarray | None = None) -> np.ndarray:
        """(N, len(classes)) probabilities over self.classes."""
        design = self.design_matrix(features, colour_stats)
        coef = np.asarray(self.state["coef"])
        if self.model == "ordinal":
            # Proportional odds: P(y <= k) = logistic(cutpoint_k - x.beta).
            cumulative = special.expit(np.asarray(self.state["cutpoints"])[None, :] - (design @ coef)[:, None])
            cumulative = np.hstack([np.zeros((len(design), 1)), cumulative, np.ones((len(design), 1))])
            return np.diff(cumulative, axis=1)
        return special.softmax(design @ coef.T + np.asarray(self.state["intercept"]), axis=1)

    def predict(self, features: np.ndarray | None, colour_stats: np.ndarray | None = None) -> np.ndarray:
        """Fitzpatrick types: the median of each image's predictive distribution."""
        cumulative = np.cumsum(self.predict_proba(features, colour_stats), axis=1)
        return self.classes[np.argmax(cumulative >= 0.5 - 1e-12, axis=1)]

    # ---- storage ----

    def to_dict(self) -> dict:
        self._require_fitted()
        return {
            "format": FORMAT,
            "model": self.model,
            "n_components": self.n_components,
            "regularisation": self.regularisation,
            "class_weight": self.class_weight,
            "seed": self.seed,
            "metadata": json_safe(self.metadata),
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LearnedPhototypeEstimator:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a stored phototype estimator of format {FORMAT!r}: {data.get('format')!r}")
        return cls(
            model=data["model"],
            n_components=data["n_components"],
            regularisation=data["regularisation"],
            class_weight=data["class_weight"],
            seed=data["seed"],
            metadata=dict(data["metadata"]),
            state=data["state"],
        )


def cross_validated_predictions(
    features: np.ndarray | None,
    labels: Sequence[int],
    groups: Sequence[object],
    *,
    colour_stats: np.ndarray | None = None,
    n_splits: int = 5,
    seed: int = 0,
    **estimator_params,
) -> np.ndarray:
    """Out-of-fold predicted types, each from a model that never saw the image's patient.

    Folds are stratified by type and grouped by patient (StratifiedGroupKFold), so two photographs of one lesion
    never sit on both sides of a split.
    """
    y = np.asarray(labels, dtype=np.int64)
    group_ids = np.asarray([str(g) for g in groups])
    features = _as_matrix(features, len(y), "features")
    colour_stats = _as_matrix(colour_stats, len(y), "colour_stats")
    predictions = np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(y)), y, group_ids):
        estimator = LearnedPhototypeEstimator(seed=seed, **estimator_params)
        estimator.fit(
            None if features is None else features[train],
            y[train],
            None if colour_stats is None else colour_stats[train],
        )
        predictions[test] = estimator.predict(
            None if features is None else features[test],
            None if colour_stats is None else colour_stats[test],
        )
    return predictions
