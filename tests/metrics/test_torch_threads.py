"""The one helper that runs a block with a given torch thread count."""
from __future__ import annotations

import pytest
import torch

from metrics.torch_threads import intra_op_threads


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_sets_the_count_inside_and_restores_it_even_after_an_error(two_threads):
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with intra_op_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("unset", [None, 0])
def test_none_or_zero_leaves_the_setting(two_threads, unset):
    with intra_op_threads(unset):
        assert torch.get_num_threads() == 2
