"""Case sampling and reading orders: pure functions, so checked exhaustively with generated inputs."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reader_study.sampling import (
    ArmPool,
    SelectionError,
    min_cases_between_repeats,
    reading_order,
    repeat_count,
    select_cases,
)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), fraction=st.floats(0, 0.5), seed=st.integers(0, 2**62))
def test_order_shows_every_case_once_and_repeats_late(n, fraction, seed):
    cases = list(range(100, 100 + n))
    order = reading_order(cases, fraction, seed)
    firsts = [c for c, number in order if number == 1]
    repeats = [c for c, number in order if number == 2]
    assert sorted(firsts) == cases
    assert len(repeats) == len(set(repeats)) == repeat_count(n, fraction)
    for case in repeats:
        between = order.index((case, 2)) - order.index((case, 1)) - 1
        assert between >= min_cases_between_repeats(n) >= 1  # later, and never adjacent
    assert reading_order(cases, fraction, seed) == order  # reproducible


def test_orders_differ_between_seeds_and_do_not_follow_the_ids():
    cases = list(range(40))
    orders = {tuple(reading_order(cases, 0.1, seed)) for seed in range(20)}
    assert len(orders) == 20
    assert all([c for c, _ in order[:40]] != cases for order in orders)


def test_repeat_count_follows_the_fraction():
    assert repeat_count(40, 0.1) == 4
    assert repeat_count(40, 0.0) == 0
    assert repeat_count(2, 0.5) == 0  # too few cases to separate a repeat from its first showing


def _pool(name, labels, count):
    return ArmPool(name, count, [(i, label) for i, label in enumerate(labels, start=hash(name) % 1000 * 1000)])


def test_plain_sampling_draws_the_counts_reproducibly():
    pools = [_pool("a", ["x"] * 10, 4), _pool("b", ["y"] * 7, 7)]
    chosen = select_cases(pools, seed=3)
    assert [len(chosen["a"]), len(chosen["b"])] == [4, 7]
    assert select_cases(pools, seed=3) == chosen
    assert any(select_cases(pools, seed=s)["a"] != chosen["a"] for s in range(4, 10))


def test_balanced_sampling_gives_arms_the_same_label_mix():
    synthetic = _pool("syn", ["mel"] * 30 + ["nev"] * 5 + ["bcc"] * 8, 7)
    real = _pool("real", ["mel"] * 4 + ["nev"] * 40 + ["bcc"] * 3 + ["scc"] * 9, 7)
    chosen = select_cases([synthetic, real], seed=1, balance=True)
    mix = {}
    for pool in (synthetic, real):
        labels = dict(pool.images)
        mix[pool.name] = Counter(labels[i] for i in chosen[pool.name])
    assert mix["syn"] == mix["real"]
    assert set(mix["syn"]) == {"mel", "nev", "bcc"}  # scc is not in every arm
    assert sorted(mix["syn"].values()) == [2, 2, 3]


def test_balancing_refuses_what_the_sets_cannot_give():
    with pytest.raises(SelectionError, match="labelled"):
        select_cases([_pool("a", ["mel"] * 1 + ["nev"] * 9, 6), _pool("b", ["mel", "nev"] * 5, 6)], 0, balance=True)
    with pytest.raises(SelectionError, match="no label value"):
        select_cases([_pool("a", ["mel"] * 3, 2), _pool("b", ["nev"] * 3, 2)], 0, balance=True)
    with pytest.raises(SelectionError, match="asked for 5"):
        select_cases([_pool("a", ["x"] * 3, 5)], 0)
