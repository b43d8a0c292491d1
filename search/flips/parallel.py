"""Many walkers at once: one process per walker (``multiprocessing``), or Ray tasks with ``ray=True``.

Each walker runs a searcher with its own seed (``walk_search`` by default; ``pools.pool_search``
for the rank-by-rank search); improvements stream back to the parent as ``(worker, seconds, rank)``
events (for the progress display), and the first walker to reach the target rank stops the others. Every scheme that comes back was verified exactly by its walker
and is verified again here (it crossed a process boundary).
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import time
from dataclasses import replace
from typing import Callable

from compiler.algebra.factors import Factorization, FactorizationError, Provenance
from search.flips.walker import WalkConfig, WalkResult, walk_search

# search(start, config, *, on_best, should_stop, provenance) -> WalkResult; config has ``seed`` and
# ``target_rank`` fields. Module-level functions only: with processes, it is pickled by name.
Searcher = Callable[..., WalkResult]


def _worker(start: Factorization, cfg, wid: int, events, stop, provenance: Provenance,
            search: Searcher = walk_search) -> WalkResult:
    def on_best(t: float, f: Factorization) -> None:
        events.put((wid, t, f.rank))
        if cfg.target_rank is not None and f.rank <= cfg.target_rank:
            stop.set()

    res = search(start, cfg, on_best=on_best, should_stop=stop.is_set, provenance=provenance)
    events.put((wid, res.seconds, -1))  # this walker is done
    return res


def _check(results: list[WalkResult]) -> list[WalkResult]:
    for r in results:
        v = r.best.verify()
        if not v:
            raise FactorizationError(f"a walker returned an invalid scheme: {v.describe()}")
    return results


def run_walkers(start: Factorization, config: WalkConfig, workers: int = 1, *, use_ray: bool = False,
                on_event: Callable[[int, float, int], None] | None = None,
                provenance: Provenance | None = None, search: Searcher = walk_search) -> list[WalkResult]:
    """Run ``workers`` searchers (seeds ``config.seed + i``) and return their results.

    ``search`` is ``walk_search`` or another searcher of the same signature (``config`` of its own
    type, e.g. ``pools.pool_search`` with a ``PoolConfig``).
    """
    prov = provenance or Provenance()
    cfgs = [replace(config, seed=config.seed + i) for i in range(workers)]
    if use_ray:
        return _check(_run_ray(start, cfgs, on_event, prov, search))
    if workers == 1:  # in-process: no pickling, and numba's cache is already warm
        class _Flag:
            def __init__(self):
                self.v = False

            def set(self):
                self.v = True

            def is_set(self):
                return self.v

        class _Direct:
            def put(self, ev):
                if on_event is not None:
                    on_event(*ev)

        return _check([_worker(start, cfgs[0], 0, _Direct(), _Flag(), prov, search)])
    ctx = mp.get_context("spawn")  # numba and fork do not mix reliably; spawn is the safe default
    with ctx.Manager() as manager:
        events, stop = manager.Queue(), manager.Event()
        with ctx.Pool(workers) as pool:
            pending = [pool.apply_async(_worker, (start, c, i, events, stop, prov, search))
                       for i, c in enumerate(cfgs)]
            while not all(p.ready() for p in pending):
                try:
                    ev = events.get(timeout=0.5)
                except queue_mod.Empty:
                    continue
                if on_event is not None:
                    on_event(*ev)
            while True:
                try:
                    ev = events.get_nowait()
                except queue_mod.Empty:
                    break
                if on_event is not None:
                    on_event(*ev)
            return _check([p.get() for p in pending])


def _run_ray(start: Factorization, cfgs: list, on_event, prov: Provenance, search: Searcher) -> list[WalkResult]:
    try:
        import ray
    except ImportError as e:
        raise RuntimeError("--ray needs Ray: pip install 'fastmm[distributed]' (or run without --ray "
                           "to use local processes)") from e
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)

    @ray.remote
    class Stop:
        def __init__(self):
            self.flag = False

        def set(self):
            self.flag = True

        def is_set(self):
            return self.flag

    stop = Stop.remote()

    class _StopProxy:
        def set(self):
            stop.set.remote()

        def is_set(self):
            return ray.get(stop.is_set.remote())

    class _Events:
        def put(self, ev):
            pass  # Ray tasks report at the end (their logs carry the progress)

    @ray.remote
    def task(c, i: int) -> WalkResult:
        return _worker(start, c, i, _Events(), _StopProxy(), prov, search)

    t0 = time.perf_counter()
    refs = [task.remote(c, i) for i, c in enumerate(cfgs)]
    results = ray.get(refs)
    if on_event is not None:
        for i, r in enumerate(results):
            for t, rank in r.history:
                on_event(i, t, rank)
            on_event(i, time.perf_counter() - t0, -1)
    return results
