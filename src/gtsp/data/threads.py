"""Run per-graph preprocessing on one thread.

Preprocessing applies thousands of tiny tensor operations, one graph at a time;
intra-op threads cannot help them and, on a loaded machine, make each one wait
for the others (measured here: NCI1's random-walk encoding took 4 s on one thread
and 130 s on two while other jobs ran).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
