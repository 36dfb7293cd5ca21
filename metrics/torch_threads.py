"""Run a block with a given number of torch intra-op threads and restore the process's setting afterwards.

One implementation for the generators' and the detector's training and the audit's per-image chunks; it lives in
`metrics/` because that is the lowest Django-free package every other one may import.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def intra_op_threads(num_threads: int | None) -> Iterator[None]:
    """`num_threads` torch threads inside the block (None or 0: leave the current setting)."""
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
