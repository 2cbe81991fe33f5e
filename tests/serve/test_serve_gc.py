"""mox.serve.server.tune_gc: start-up objects frozen, a larger first-generation threshold."""

from __future__ import annotations

import gc

from mox.serve.server import GC_GEN0_THRESHOLD, tune_gc


def test_tune_gc() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        # Cycles are still collected.
        a: list[object] = []
        a.append(a)
        del a
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
