"""The classifiers a utility test trains, behind one small interface.

A classifier is fitted many times per audit (every fold x every condition), always on the same kind of rows, so the
interface separates the two costs: `representation(basis_rows)` fits what uses no labels once per fold (shared by
every condition of that fold, so conditions differ only in their training rows), and `fit(x, y, n_classes, seed)`
returns a function from rows to class probabilities (N x n_classes, columns in class order, a class absent from the
training rows at probability 0).

- `LinearProbe` (the default): standardised extractor features -> the first 64 principal components of the fold's
  real training rows (label-free) -> L2 logistic regression with balanced class weights. Deterministic, seconds
  for a whole audit. It measures whether the images carry class information in the features of the audit's own
  extractor: a proxy for a network trained on them, stated as such in the report.
- `metrics.utility.finetune.FineTunedEffNet`: the last stage of the offline EfficientNet-Lite0 fine-tuned on the
  images, for deployments that can afford it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

Transform = Callable[[np.ndarray], np.ndarray]
Predictor = Callable[[np.ndarray], np.ndarray]


def full_probabilities(probabilities: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    """Columns for the classes a model was fitted on, spread into all n_classes (absent classes at 0)."""
    full = np.zeros((probabilities.shape[0], n_classes), dtype=np.float64)
    full[:, present] = probabilities
    return full


@dataclass(frozen=True)
class LinearProbe:
    components: int = 64
    max_iter: int = 300

    @property
    def name(self) -> str:
        return "linear probe"

    def describe(self) -> str:
        return (f"linear probe: logistic regression (L2, C = 1/sqrt(k), balanced class weights) on the first k <= "
                f"{self.components} principal components of the standardised extractor features, scaler and "
                "components fitted on each fold's real training images without labels")

    def representation(self, basis_rows: np.ndarray) -> Transform:
        basis_rows = np.asarray(basis_rows, dtype=np.float64)
        scaler = StandardScaler().fit(basis_rows)
        k = max(1, min(self.components, basis_rows.shape[0] - 1, basis_rows.shape[1]))
        pca = PCA(n_components=k, svd_solver="randomized", random_state=0).fit(scaler.transform(basis_rows))
        return lambda rows: pca.transform(scaler.transform(np.asarray(rows, dtype=np.float64)))

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> Predictor:
        present = np.unique(y)
        if len(present) < 2:
            only = int(present[0])
            return lambda rows: full_probabilities(np.ones((len(rows), 1)), np.array([only]), n_classes)
        model = LogisticRegression(C=1.0 / np.sqrt(x.shape[1]), class_weight="balanced", solver="newton-cholesky",
                                   max_iter=self.max_iter)
        model.fit(x, y)
        return lambda rows: full_probabilities(model.predict_proba(rows), model.classes_, n_classes)
