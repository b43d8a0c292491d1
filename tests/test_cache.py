"""The tuning cache: complete keys, atomic writes, corrupt files, concurrent writers."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import warnings

import pytest
import torch

from compiler.algebra.library import library_algorithm
from fastmm.cache import CacheKey, TuningCache
from fastmm.planner import Problem
from fastmm.plans import TORCH_MATMUL, Plan


def _problem(**changes) -> Problem:
    base = Problem(2048, 2048, 2048, 1, torch.float32, torch.device("cpu"), "highest", (2048, 1), (2048, 1))
    return dataclasses.replace(base, **changes)


def _strassen_plan(levels: int = 2) -> Plan:
    f = library_algorithm("strassen")
    return Plan(f.name, f.digest, levels, "materialized", "torch", factorization=f)


def test_roundtrip_and_factorization_reattached(tmp_path):
    cache = TuningCache(tmp_path)
    prob = _problem()
    cache.put(CacheKey.of(prob), _strassen_plan())
    fresh = TuningCache(tmp_path)            # a new process would see the file, not the memory
    hit = fresh.lookup(prob)
    assert hit == _strassen_plan() and hit.factorization is not None
    assert hit.factorization.digest == hit.digest


@pytest.mark.parametrize("change", [
    {"dtype": torch.float64}, {"n": 2047}, {"k": 4096}, {"p": 1024}, {"batch": 2},
    {"strides_a": (1, 2048)}, {"strides_b": (1, 2048)}, {"precision": "high"},
])
def test_key_changes_invalidate(tmp_path, change):
    cache = TuningCache(tmp_path)
    cache.put(CacheKey.of(_problem()), _strassen_plan())
    assert TuningCache(tmp_path).lookup(_problem(**change)) is None


@pytest.mark.parametrize("field", ["device", "torch_version", "triton_version", "cuda_version", "fastmm_version"])
def test_environment_fields_are_in_the_key(tmp_path, field):
    key = CacheKey.of(_problem())
    other = dataclasses.replace(key, **{field: "something-else"})
    assert key.digest != other.digest
    cache = TuningCache(tmp_path)
    cache.put(key, _strassen_plan())
    assert TuningCache(tmp_path).get(other) is None


def test_entry_repeats_key_so_a_renamed_file_is_not_trusted(tmp_path):
    cache = TuningCache(tmp_path)
    k1, k2 = CacheKey.of(_problem()), CacheKey.of(_problem(n=1000))
    cache.put(k1, _strassen_plan())
    cache.path(k1).rename(cache.path(k2))
    assert TuningCache(tmp_path).get(k2) is None


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"\x00\xff\xfe", b'{"format": 1, "key": 3}',
                                     b'{"format": 1}', b"[1, 2, 3]"])
def test_corrupt_file_warns_and_recovers(tmp_path, garbage):
    key = CacheKey.of(_problem())
    cache = TuningCache(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    cache.path(key).write_bytes(garbage)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert TuningCache(tmp_path).get(key) is None          # ignored, no exception
    cache.put(key, _strassen_plan())                           # and a later tune overwrites it
    assert TuningCache(tmp_path).get(key) == _strassen_plan()


def test_corrupt_json_warns(tmp_path):
    key = CacheKey.of(_problem())
    TuningCache(tmp_path).put(key, TORCH_MATMUL)
    TuningCache(tmp_path).path(key).write_text("{truncated")
    with pytest.warns(UserWarning, match="corrupted"):
        assert TuningCache(tmp_path).get(key) is None


def test_stale_digest_is_ignored(tmp_path):
    prob = _problem()
    plan = dataclasses.replace(_strassen_plan(), digest="0" * 64)
    TuningCache(tmp_path).put(CacheKey.of(prob), plan)
    assert TuningCache(tmp_path).lookup(prob) is None


def _writer(directory: str, worker: int, rounds: int) -> None:
    cache = TuningCache(directory)
    key = CacheKey.of(_problem())
    for i in range(rounds):
        plan = _strassen_plan(levels=1 + (worker + i) % 3)
        cache.put(key, plan, {"worker": float(worker), "round": float(i)})


def test_concurrent_writers_never_leave_a_torn_file(tmp_path):
    # fork: the children need no fresh interpreter (torch import in spawn costs ~5 s each)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    key = CacheKey.of(_problem())
    reads = 0
    while any(p.is_alive() for p in procs):       # read while they write: never a parse error
        path = TuningCache(tmp_path).path(key)
        if path.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                plan = TuningCache(tmp_path).get(key)
            assert plan is None or plan.algorithm == "strassen-2x2x2-r7"
            reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    entry = json.loads(TuningCache(tmp_path).path(key).read_text())
    assert entry["plan"]["levels"] in (1, 2, 3)
    assert not list(tmp_path.glob("*.tmp"))           # no temporary files left behind
