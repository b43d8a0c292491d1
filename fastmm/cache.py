"""The persistent tuning cache: measured winners and the machine's calibration, small JSON files.

Two kinds of entry, one file each:

- a *decision* per problem (``CacheKey``): the measured winner, and the plans measured slower
  than torch.matmul there (``slower``), which the planner never chooses again;
- a *calibration* per device and dtype (``CalibrationKey``): the cost model's constants measured
  on this machine (``fastmm.calibrate``).

A key holds everything that can change the answer: the device name (with the thread count on a
CPU), the torch / Triton / CUDA / BLAS versions, fastmm's version, and for decisions the dtype,
the shapes, the strides and the fp32 precision mode. Its sha256 names the file, and the file
repeats the key, so a stale or colliding entry is never used.

Writes go to a temporary file in the same directory, then ``os.replace`` (atomic on POSIX and
Windows): concurrent writers cannot produce a torn file, the last one wins. The ``slower`` list
is merged with the one on disk under an advisory lock (``fcntl.flock`` where it exists), so two
processes tuning the same shape cannot lose each other's "slower than torch" verdicts. A file
that cannot be read or parsed is ignored with a warning (and overwritten by the next write),
never an error. The directory is ``platformdirs.user_cache_dir("fastmm")``, or
``$FASTMM_CACHE_DIR``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fastmm._version import __version__
from fastmm.backends import stored_basis
from fastmm.planner import resolve_algorithm
from fastmm.plans import Plan

# 2: plans carry a tile (or null) and entries a list of plans slower than torch.matmul;
# 3: plans carry a basis ("" or an alternative basis's digest), and decisions were taken among
#    candidates that include alternative-basis plans (a format-2 winner was not: it is retuned)
FORMAT = 3


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[str, str, str]:
    try:
        import triton
        triton_version = getattr(triton, "__version__", "unknown")
    except Exception:  # noqa: BLE001 - triton absent or broken on this machine: no triton plans
        triton_version = "none"
    return torch.__version__, triton_version, str(torch.version.cuda or "none")


@functools.lru_cache(maxsize=1)
def blas_version() -> str:
    """The BLAS torch was built with, and its version where torch reports one (e.g. "mkl 2024.2")."""
    try:
        config = torch.__config__.show()
    except Exception:  # noqa: BLE001 - a torch without build information: the key says so
        return "unknown"
    info = re.search(r"BLAS_INFO=(\S+?),", config)
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", config)
    name = info.group(1) if info else "unknown"
    return f"{name} {mkl.group(1)}" if mkl else name


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
    blas_version: str = ""

    @classmethod
    def of(cls, problem) -> "CacheKey":
        tv, trv, cv = _versions()
        shape_a = (problem.batch, problem.n, problem.k) if problem.batch > 1 else (problem.n, problem.k)
        shape_b = (problem.batch, problem.k, problem.p) if problem.batch > 1 else (problem.k, problem.p)
        return cls(device_name(problem.device), tv, trv, cv, __version__, str(problem.dtype), shape_a, shape_b,
                   tuple(problem.strides_a), tuple(problem.strides_b), problem.precision, blas_version())

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CalibrationKey:
    """Where a calibration holds: one device (with its thread count), dtype and set of versions."""

    device: str
    dtype: str
    torch_version: str
    cuda_version: str
    blas_version: str
    fastmm_version: str

    @classmethod
    def of(cls, device: torch.device, dtype: torch.dtype) -> "CalibrationKey":
        tv, _, cv = _versions()
        return cls(device_name(torch.device(device)), str(dtype), tv, cv, blas_version(), __version__)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


CALIBRATION_FIELDS = ("peak_flops", "half_size", "bandwidth", "op_overhead")


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
        self._memory: dict[CacheKey, dict | None] = {}

    def path(self, key: CacheKey) -> Path:
        return self.directory / f"{key.digest}.json"

    def calibration_path(self, key: CalibrationKey) -> Path:
        return self.directory / f"calibration-{key.digest}.json"

    # ---- decisions -------------------------------------------------------------------------

    def _entry(self, key: CacheKey) -> dict | None:
        if key not in self._memory:
            self._memory[key] = self._read_entry(key)
        return self._memory[key]

    def get(self, key: CacheKey) -> Plan | None:
        """The stored winner for ``key`` (None: undecided), unless it was later measured slower."""
        entry = self._entry(key)
        if entry is None or entry["plan"] is None:
            return None
        plan = entry["plan"]
        return None if plan.key in entry["slower"] else plan

    def slower(self, key: CacheKey) -> frozenset[str]:
        """Keys of the plans measured slower than torch.matmul for ``key``: never chosen again."""
        entry = self._entry(key)
        return frozenset() if entry is None else entry["slower"]

    def slower_for(self, problem) -> frozenset[str]:
        return self.slower(CacheKey.of(problem))

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
        if plan.is_alt_basis:
            alt = stored_basis(f)
            if alt is None or alt.digest != plan.basis:
                return None        # factors/altbasis.json changed since tuning: stale as well
        return Plan(**{**plan.__dict__, "factorization": f})

    def _read_entry(self, key: CacheKey) -> dict | None:
        entry = self._read_json(self.path(key), key.to_json())
        if entry is None:
            return None
        try:
            plan = None if entry["plan"] is None else Plan.from_dict(entry["plan"])
            slower = frozenset(str(k) for k in entry.get("slower", ()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            warnings.warn(f"fastmm tuning cache: corrupted entry {self.path(key)} ({type(exc).__name__}: {exc}); "
                          "ignored", stacklevel=5)
            return None
        return {"plan": plan, "slower": slower}

    def put(self, key: CacheKey, plan: Plan | None, timings: dict[str, float] | None = None,
            slower: tuple[str, ...] | frozenset[str] = ()) -> Path:
        """Store ``plan`` as the winner for ``key`` (None: no winner yet) and add ``slower`` to the
        plans measured slower than torch.matmul (merged with the file's list under a lock; the
        write itself is atomic, so concurrent writers are safe)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked(), warnings.catch_warnings():
            warnings.simplefilter("ignore")        # a corrupted file is about to be replaced
            on_disk = self._read_entry(key)
            merged = frozenset(slower) | (on_disk["slower"] if on_disk else frozenset())
            if plan is None and on_disk is not None:
                plan = on_disk["plan"]
            entry = {"format": FORMAT, "key": key.to_json(), "plan": None if plan is None else plan.to_dict(),
                     "slower": sorted(merged), "timings_s": timings or {},
                     "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            path = self._write_json(self.path(key), entry)
        self._memory[key] = {"plan": plan, "slower": merged}
        return path

    def remember(self, key: CacheKey, plan: Plan | None, slower=()) -> None:
        """Keep a decision in this process only (when the directory cannot be written)."""
        old = self._entry(key)
        self._memory[key] = {"plan": plan, "slower": frozenset(slower) | (old["slower"] if old else frozenset())}

    # ---- calibration -----------------------------------------------------------------------

    def get_calibration(self, key: CalibrationKey) -> dict | None:
        """The measured constants for ``key`` ({field: value} and "measured_at"), or None."""
        entry = self._read_json(self.calibration_path(key), key.to_json())
        if entry is None:
            return None
        values = entry.get("values")
        ok = (isinstance(values, dict) and all(isinstance(values.get(f), (int, float)) and
                                               math.isfinite(values[f]) and values[f] > 0 for f in CALIBRATION_FIELDS))
        if not ok:
            warnings.warn(f"fastmm tuning cache: corrupted calibration {self.calibration_path(key)}; ignored",
                          stacklevel=3)
            return None
        return {**{f: float(values[f]) for f in CALIBRATION_FIELDS}, "measured_at": entry.get("written", "?")}

    def put_calibration(self, key: CalibrationKey, values: dict, details: dict | None = None) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {"format": FORMAT, "key": key.to_json(), "values": {f: values[f] for f in CALIBRATION_FIELDS},
                 "details": details or {}, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return self._write_json(self.calibration_path(key), entry)

    # ---- files -----------------------------------------------------------------------------

    @staticmethod
    def _read_json(path: Path, key_json: dict) -> dict | None:
        """The entry at ``path`` if it is of this format and repeats ``key_json``; None otherwise
        (a missing file silently, an unreadable or corrupted one with a warning)."""
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            warnings.warn(f"fastmm tuning cache: cannot read {path} ({exc}); ignored", stacklevel=5)
            return None
        try:
            entry = json.loads(text)
            if entry.get("format") != FORMAT or entry.get("key") != key_json:
                return None
            return entry
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            warnings.warn(f"fastmm tuning cache: corrupted entry {path} ({type(exc).__name__}: {exc}); ignored",
                          stacklevel=5)
            return None

    def _write_json(self, path: Path, entry: dict) -> Path:
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
        return path

    @contextlib.contextmanager
    def _locked(self):
        """An advisory lock on the directory for read-merge-write (a no-op where fcntl is missing)."""
        try:
            import fcntl
        except ImportError:
            yield
            return
        with open(self.directory / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def clear_memory(self) -> None:
        self._memory.clear()


@functools.lru_cache(maxsize=8)
def _cache_for(directory: str) -> TuningCache:
    return TuningCache(directory)


def default_cache() -> TuningCache:
    """The process-wide cache for the current cache directory."""
    return _cache_for(str(default_dir()))
