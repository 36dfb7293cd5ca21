"""Which cases a study shows, and in which order each reader sees them. Pure functions, seeded.

Nothing here touches the database, so the same seed reproduces the same cases and orders in a notebook.
"""
from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


class SelectionError(ValueError):
    """The study design asks for cases the image sets cannot provide."""


@dataclass(frozen=True)
class ArmPool:
    """What one arm can draw from: ``(image id, label value)`` pairs, and how many to draw."""

    name: str
    count: int
    images: Sequence[tuple[int, Hashable]]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from a study seed and e.g. a reader id: independent streams, reproducible anywhere."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def select_cases(pools: Sequence[ArmPool], seed: int, balance: bool = False) -> dict[str, list[int]]:
    """Draw ``count`` images from every arm, without replacement.

    With ``balance`` each arm draws the same number of images from every label value present in *all* arms,
    so the label mix is identical across arms (a reader cannot use e.g. the diagnosis to tell real from
    synthetic) and even within each arm. When ``count`` is not divisible by the number of label values, the
    extra images go to the same (randomly chosen) values in every arm.
    """
    rng = np.random.default_rng(derive_seed("cases", seed))
    if not balance:
        chosen = {}
        for pool in pools:
            ids = sorted(image_id for image_id, _ in pool.images)
            if pool.count > len(ids):
                raise SelectionError(f"{pool.name}: asked for {pool.count} images, the set has {len(ids)}")
            chosen[pool.name] = sorted(int(i) for i in rng.choice(ids, size=pool.count, replace=False))
        return chosen

    def present(pool: ArmPool) -> set:
        return {label for _, label in pool.images if label not in ("", None)}

    shared = set.intersection(*(present(p) for p in pools)) if pools else set()
    if not shared:
        raise SelectionError("no label value is present in every arm, so the arms cannot be balanced")
    labels = sorted(shared, key=repr)
    label_order = [labels[i] for i in rng.permutation(len(labels))]
    chosen = {}
    for pool in pools:
        base, extra = divmod(pool.count, len(label_order))
        picked: list[int] = []
        for rank, label in enumerate(label_order):
            want = base + (1 if rank < extra else 0)
            ids = sorted(image_id for image_id, value in pool.images if value == label)
            if want > len(ids):
                raise SelectionError(
                    f"{pool.name}: balancing needs {want} images labelled {label!r}, the set has {len(ids)}"
                )
            picked.extend(int(i) for i in rng.choice(ids, size=want, replace=False))
        chosen[pool.name] = sorted(picked)
    return chosen


def min_cases_between_repeats(n_cases: int) -> int:
    """How many other cases at least separate a repeat from its first showing: never adjacent, and at least a
    fifth of the study later, so the reader has seen many images in between."""
    return max(1, n_cases // 5)


def repeat_count(n_cases: int, repeat_fraction: float) -> int:
    if n_cases < 3 or repeat_fraction <= 0:
        return 0
    eligible = n_cases - min_cases_between_repeats(n_cases)
    return max(0, min(int(round(repeat_fraction * n_cases)), eligible))


def reading_order(case_ids: Sequence[int], repeat_fraction: float, seed: int) -> list[tuple[int, int]]:
    """One reader's order: ``[(case id, showing number), …]``; number 2 marks the repeat of a case.

    Every case appears once in a random order; ``repeat_count`` of them appear again later, with at least
    ``min_cases_between_repeats`` other cases between the two showings.
    """
    rng = np.random.default_rng(seed)
    first = [int(c) for c in np.asarray(sorted(case_ids))[rng.permutation(len(case_ids))]] if case_ids else []
    n = len(first)
    gap = min_cases_between_repeats(n)
    m = repeat_count(n, repeat_fraction)
    sequence: list[tuple[int, int]] = [(case, 1) for case in first]
    # Only cases whose first showing leaves room for the gap can be repeated.
    repeated = [first[i] for i in rng.choice(n - gap, size=m, replace=False)] if m else []
    for case in repeated:
        index = sequence.index((case, 1))
        earliest = index + 1 + gap  # inserting at j puts j - index - 1 other cases in between
        sequence.insert(int(rng.integers(earliest, len(sequence) + 1)), (case, 2))
    return sequence
