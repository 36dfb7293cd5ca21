"""Repeated, grouped, stratified splits of the real images: real test folds, and the real training side in halves.

For each of R repeats (each with its own recorded seed) the real images are cut into k folds, stratified by class and
grouped by lesion/patient, so that no lesion sits on both sides. Each fold in turn is the **test fold: real images
only** (synthetic images are never scored). The other k - 1 folds are cut again, by group and class, into two halves:

- the **real training set** every condition starts from (real only, real + synthetic, …);
- the **held-out real pool**: real images with their true labels that the real training set does not hold. Added to
  the training set as if they were synthetic they are the negative control (a perfect generator's images), and
  added at several ratios they draw the curve that a generator is measured against ("as good as more real data").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from metrics.results import InsufficientSamplesError


@dataclass(frozen=True)
class UtilitySplit:
    repeat: int
    fold: int
    seed: int  # the repeat's seed: its folds and halves follow from it
    test: np.ndarray  # real rows scored in this fold
    train: np.ndarray  # the real training set
    held_out: np.ndarray  # real rows of the training side that the real training set leaves out


def repeat_seed(seed: int, repeat: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(repeat)]).generate_state(1)[0])


def _grouped_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> list[np.ndarray]:
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed % 2**32)
    return [test for _, test in splitter.split(np.zeros(len(labels)), labels, groups)]


def _at_most_held_out(train: np.ndarray, held_out: np.ndarray, labels: np.ndarray,
                      groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move whole groups from the training half to the held-out half (smallest first, then by name) until no class
    has more training than held-out images, so that the held-out pool can always match the training set 1:1 in
    every class (the negative control at ratio 1). Grouped halves differ by a few images at most."""
    train, held_out = list(train), list(held_out)
    while True:
        surplus = [c for c in np.unique(labels[train])
                   if np.sum(labels[train] == c) > np.sum(labels[held_out] == c)]
        if not surplus:
            return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(held_out, dtype=np.int64))
        members: dict[str, list[int]] = {}
        for row in train:
            if labels[row] == surplus[0]:
                members.setdefault(groups[row], []).append(row)
        moved = min(members, key=lambda g: (len(members[g]), g))
        moving = {row for row in train if groups[row] == moved}
        train = [row for row in train if row not in moving]
        held_out.extend(sorted(moving))


def repeated_splits(labels: Sequence[int], groups: Sequence, *, folds: int = 5, repeats: int = 5,
                    seed: int = 0) -> list[UtilitySplit]:
    """k x R splits (repeat-major). Raises InsufficientSamplesError when a class cannot appear in every part."""
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray([str(g) for g in groups])
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} real images")
    classes = np.unique(labels)
    for c in classes:
        n_groups = len(np.unique(groups[labels == c]))
        if n_groups < 2 * folds:
            raise InsufficientSamplesError(
                f"class {int(c)} has {n_groups} lesion/patient groups among the real images; {2 * folds} are needed "
                f"so that each of {folds} test folds and both halves of every training side hold it")
    splits = []
    for repeat in range(repeats):
        recorded = repeat_seed(seed, repeat)
        for fold, test in enumerate(_grouped_folds(labels, groups, folds, recorded)):
            side = np.setdiff1d(np.arange(len(labels)), test)
            halves = _grouped_folds(labels[side], groups[side], 2, recorded + fold + 1)
            train, held_out = _at_most_held_out(side[halves[0]], side[halves[1]], labels, groups)
            for part, name in ((test, "test fold"), (train, "real training set"), (held_out, "held-out real pool")):
                missing = set(classes.tolist()) - set(np.unique(labels[part]).tolist())
                if missing:
                    raise InsufficientSamplesError(
                        f"repeat {repeat}, fold {fold}: the {name} holds no image of class(es) {sorted(missing)}; "
                        "too few lesion/patient groups per class")
            splits.append(UtilitySplit(repeat, fold, recorded, np.sort(test), train, held_out))
    return splits
