"""Garbage-collector settings for processes that move many small records (the projector).

CPython's cyclic collector runs a young collection every 700 container allocations, and
the projector allocates several per record (aiokafka's record and header tuples, our row
tuple) while it holds up to two 50,000-row batches that older collections walk again and
again. Measured on 800,000 records: 2.65 s of a 9.6 s run went to collections. None of
those objects is part of a cycle (reference counting frees them), so collecting less
often loses nothing: with startup objects frozen out of the walk and young collections
every 10,000 allocations, collections took 1.0 s and the run 7.6 s.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_for_throughput() -> None:
    """Freeze what exists now (imports, settings, clients) and collect less often."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(middle, 50), max(old, 1000))
