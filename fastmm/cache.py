"""The persistent tuning cache: measured winners, one small JSON file per key.

The key holds everything that can change which plan wins or whether it is correct: the device
name, the torch / Triton / CUDA versions, fastmm's version, the dtype, the shapes, the strides and
the fp32 precision mode. Its sha256 names the file, and the file repeats the key, so a stale or
colliding entry is never used.

Writes go to a temporary file in the same directory, then ``os.replace`` (atomic on POSIX and
Windows): concurrent writers cannot produce a torn file, the last one wins. A file that cannot
be read or parsed is ignored with a warning (and overwritten by the next tune), never an error.
The directory is ``platformdirs.user_cache_dir("fastmm")``, or ``$FASTMM_CACHE_DIR``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fastmm._version import __version__
from fastmm.planner import resolve_algorithm
from fastmm.plans import Plan

FORMAT = 1


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[str, str, str]:
    try:
        import triton
        triton_version = getattr(triton, "__version__", "unknown")
    except Exception:  # noqa: BLE001 - triton absent or broken on this machine: no triton plans
        triton_version = "none"
    return torch.__version__, triton_version, str(torch.version.cuda or "none")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"cpu:{torch.backends.cpu.get_cpu_capability()}:{torch.get_num_threads()}threads"
    return device.type


@dataclass(frozen=True)
class CacheKey:
    device: str
    torch_version: str
    triton_version: str
    cuda_version: str
    fastmm_version: str
    dtype: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    strides_a: tuple[int, ...]
    strides_b: tuple[int, ...]
    precision: str

    @classmethod
    def of(cls, problem) -> "CacheKey":
        tv, trv, cv = _versions()
        shape_a = (problem.batch, problem.n, problem.k) if problem.batch > 1 else (problem.n, problem.k)
        shape_b = (problem.batch, problem.k, problem.p) if problem.batch > 1 else (problem.k, problem.p)
        return cls(device_name(problem.device), tv, trv, cv, __version__, str(problem.dtype), shape_a, shape_b,
                   tuple(problem.strides_a), tuple(problem.strides_b), problem.precision)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


def default_dir() -> Path:
    env = os.environ.get("FASTMM_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("fastmm")) / "tuning"


class TuningCache:
    """Measured winners on disk, plus an in-memory layer so a hit costs one dict lookup."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_dir()
        self._memory: dict[CacheKey, Plan | None] = {}

    def path(self, key: CacheKey) -> Path:
        return self.directory / f"{key.digest}.json"

    def get(self, key: CacheKey) -> Plan | None:
        if key in self._memory:
            return self._memory[key]
        plan = self._read(key)
        self._memory[key] = plan
        return plan

    def lookup(self, problem) -> Plan | None:
        """The cached winner for ``problem``, with its factorization re-attached (or None)."""
        plan = self.get(CacheKey.of(problem))
        if plan is None or plan.is_vendor:
            return plan
        try:
            f = resolve_algorithm(plan.algorithm)
        except Exception as exc:  # noqa: BLE001 - the algorithm left the library: retune
            warnings.warn(f"fastmm tuning cache: cached plan {plan.key} unusable ({exc}); ignored", stacklevel=3)
            return None
        if f.digest != plan.digest:
            return None            # the library file changed since tuning: the entry is stale
        return Plan(**{**plan.__dict__, "factorization": f})

    def _read(self, key: CacheKey) -> Plan | None:
        path = self.path(key)
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            warnings.warn(f"fastmm tuning cache: cannot read {path} ({exc}); ignored", stacklevel=4)
            return None
        try:
            entry = json.loads(text)
            if entry.get("format") != FORMAT or entry.get("key") != key.to_json():
                return None
            return Plan.from_dict(entry["plan"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            warnings.warn(f"fastmm tuning cache: corrupted entry {path} ({type(exc).__name__}: {exc}); ignored",
                          stacklevel=4)
            return None

    def put(self, key: CacheKey, plan: Plan, timings: dict[str, float] | None = None) -> Path:
        """Store ``plan`` as the winner for ``key`` (atomic; safe with concurrent writers)."""
        entry = {"format": FORMAT, "key": key.to_json(), "plan": plan.to_dict(),
                 "timings_s": timings or {}, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(entry, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        self._memory[key] = plan
        return path

    def clear_memory(self) -> None:
        self._memory.clear()


@functools.lru_cache(maxsize=8)
def _cache_for(directory: str) -> TuningCache:
    return TuningCache(directory)


def default_cache() -> TuningCache:
    """The process-wide cache for the current cache directory."""
    return _cache_for(str(default_dir()))
