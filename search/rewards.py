"""Reward plugins: the terminal reward of a finished factorization (HIGHER IS BETTER).

One small interface, shared by every search method (the RL agent ``search.rl``, the flip-graph
search ``search.flips``)::

    class Reward(Protocol):
        name: str
        def __call__(self, f: Factorization) -> float: ...

Built-ins (``load_reward(spec, **kw)``):

- ``"rank"``: ``-f.rank`` (the AlphaTensor default: -1 per product).
- ``"additions"``: ``-(additions after the compiler's CSE)``, a cost model with no hardware. The
  compiler is imported lazily inside the call: search touches the compiler only through a plugin.
- ``"runtime"``: the one-level algorithm built with a chosen backend and timed against
  ``torch.matmul`` in a SEPARATE PROCESS with a timeout, so a kernel that crashes or hangs costs one
  failed measurement (scored ``failure_reward``) instead of the search; results are cached by
  factorization digest and the measurement key (backend, dtype, size, torch version).
- ``"pkg.module:Class"`` (or ``:function`` returning a Reward): a user plugin, called with ``**kw``.
- a name registered as an entry point in group ``"fastmm.rewards"``.
- ``"A+λ*B"`` (e.g. ``"rank+0.5*runtime"``): AlphaTensor's combined form r' = r + λ·b.

A ``Reward`` maps a *finished* factorization to a number; per-step rewards of a game (the RL
agent's -1 per step) are the game's business, not the plugin's.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from compiler.algebra.factors import Factorization

ENTRY_POINT_GROUP = "fastmm.rewards"


@runtime_checkable
class Reward(Protocol):
    """Terminal reward of a finished, exactly valid factorization; higher is better."""

    name: str

    def __call__(self, f: Factorization) -> float: ...


class RewardError(RuntimeError):
    """A reward cannot be built or computed (unknown spec, missing compiler feature, ...)."""


# -- built-ins ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankReward:
    """``-rank``: fewer block products is better."""

    name: str = "rank"

    def __call__(self, f: Factorization) -> float:
        return -float(f.rank)


@dataclass(frozen=True)
class AdditionsReward:
    """``-(additions after CSE)`` from the compiler's cost model,
    ``compiler.ir.cse.additions_after_cse`` (block additions of one level after CSE, the count
    ``compiler.build``'s table shows as ``additions_cse``). The compiler is imported at call time so
    that ``search`` stays importable without it."""

    name: str = "additions"

    def __call__(self, f: Factorization) -> float:
        try:
            from compiler.ir.cse import additions_after_cse
        except ImportError as e:
            raise RewardError("the 'additions' reward needs compiler.ir.cse (the compiler's CSE), "
                              f"which is not importable here: {e}") from e
        return -float(additions_after_cse(f))


@dataclass(frozen=True)
class RuntimeConfig:
    """What a runtime measurement means; every field is part of the cache key.

    ``backend`` is a name in the compiler's backend registry (``"torch"``, ``"triton"``, ...: the
    algorithm compiled by ``compiler.codegen.pipeline.compile(f, backend=..., levels=1)``), ``"reference"``
    (one level evaluated with plain torch ops: the block combinations, R block products with
    ``torch.matmul``, the output combinations; needs no compiler), or ``"module:function"``, a
    factory ``function(f, dtype, device) -> callable(a, b)``.
    """

    backend: str = "torch"
    size: int = 256  # square matrices; rounded up so every block dimension divides
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 15  # median of this many timed runs, after warmup
    warmup: int = 3
    threads: int = 1  # torch intra-op threads in the child (the search machine is shared)


@dataclass
class RuntimeReward:
    """``-(t_algorithm / t_torch.matmul)`` measured in a child process; 1.0 = as fast as torch.

    A child that crashes, exits non-zero, returns garbage, computes a wrong product or exceeds
    ``timeout_s`` scores ``failure_reward`` (as if 10× slower than torch by default: a finite
    value, so value targets of an RL agent stay finite). ``cache`` maps
    ``(digest, measurement key) -> reward``; ``cache_path`` (optional JSON file) persists it.
    """

    config: RuntimeConfig = field(default_factory=RuntimeConfig)
    timeout_s: float = 60.0
    failure_reward: float = -10.0
    cache_path: str | None = None
    name: str = "runtime"
    cache: dict = field(default_factory=dict)
    last_error: str = ""

    def __post_init__(self) -> None:
        if self.cache_path and Path(self.cache_path).exists():
            try:
                self.cache.update(json.loads(Path(self.cache_path).read_text()))
            except (OSError, ValueError):
                pass  # a corrupt cache is only lost time, never a wrong answer

    def key(self, f: Factorization) -> str:
        import importlib.metadata as md
        try:
            tv = md.version("torch")
        except md.PackageNotFoundError:
            tv = "?"
        c = self.config
        return f"{f.digest}|{c.backend}|{c.size}|{c.dtype}|{c.device}|{c.threads}|torch{tv}"

    def __call__(self, f: Factorization) -> float:
        k = self.key(f)
        if k in self.cache:
            return float(self.cache[k])
        r = self._measure(f)
        self.cache[k] = r
        if self.cache_path:
            _atomic_write_text(Path(self.cache_path), json.dumps(self.cache, indent=0, sort_keys=True))
        return r

    def _measure(self, f: Factorization) -> float:
        from compiler.algebra.formats import save
        if f.field != "Q":  # refused before spawning anything: a mod-2 scheme computes no real product
            self.last_error = f"{f.label()} is valid only modulo 2; it does not compute a real matrix product"
            return self.failure_reward
        with tempfile.TemporaryDirectory(prefix="fastmm-runtime-") as d:
            path = Path(d) / "f.npz"
            save(path, [f.replace(name=f.name or "candidate")])
            cmd = [sys.executable, "-m", "search.rewards", "--measure", str(path),
                   "--config", json.dumps(self.config.__dict__)]
            env = dict(os.environ)
            # The child must import what the parent can (the repo, test helper modules).
            env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, env=env,
                                      cwd=str(Path(__file__).resolve().parents[1]))
            except subprocess.TimeoutExpired:
                self.last_error = f"timed out after {self.timeout_s}s"
                return self.failure_reward
        if proc.returncode != 0:
            self.last_error = f"child exited with {proc.returncode}: {proc.stderr.strip()[-500:]}"
            return self.failure_reward
        try:
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            ratio = float(out["ratio"])
        except (ValueError, KeyError, IndexError) as e:
            self.last_error = f"unreadable child output ({e}): {proc.stdout[-200:]!r}"
            return self.failure_reward
        if not (ratio > 0 and ratio < float("inf")):
            self.last_error = f"bad ratio {ratio}"
            return self.failure_reward
        self.last_error = ""
        return -ratio


@dataclass
class Combined:
    """AlphaTensor's r' = r + λ·b: a base reward plus λ times a bonus (e.g. rank + λ·runtime)."""

    base: Reward
    bonus: Reward
    lam: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.base.name}+{self.lam:g}*{self.bonus.name}"

    def __call__(self, f: Factorization) -> float:
        return float(self.base(f)) + self.lam * float(self.bonus(f))


BUILTINS: dict[str, Callable[..., Reward]] = {
    "rank": RankReward,
    "additions": AdditionsReward,
    "runtime": lambda **kw: RuntimeReward(
        config=RuntimeConfig(**{k: v for k, v in kw.items() if k in RuntimeConfig.__dataclass_fields__}),
        **{k: v for k, v in kw.items() if k not in RuntimeConfig.__dataclass_fields__}),
}

_COMBINED = re.compile(r"^\s*([^+]+?)\s*\+\s*([0-9.eE+-]+)\s*\*\s*(.+?)\s*$")


def load_reward(spec: str | Reward, **kw) -> Reward:
    """Build a reward from ``spec`` (see the module docstring); ``kw`` go to the plugin's constructor."""
    if not isinstance(spec, str):
        if isinstance(spec, Reward):
            return spec
        raise RewardError(f"not a reward spec: {spec!r}")
    s = spec.strip()
    m = _COMBINED.match(s)
    if m and ":" not in m.group(1):
        return Combined(load_reward(m.group(1), **kw), load_reward(m.group(3), **kw), float(m.group(2)))
    if s in BUILTINS:
        return BUILTINS[s](**kw)
    if ":" in s:
        mod_name, _, attr = s.partition(":")
        try:
            obj = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise RewardError(f"cannot load reward plugin {s!r}: {e}") from e
        return _instantiate(obj, s, kw)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == s:
            return _instantiate(ep.load(), s, kw)
    raise RewardError(f"unknown reward {s!r}: use rank, additions, runtime, 'pkg.module:Class', "
                      f"'A+λ*B' or an entry point in group {ENTRY_POINT_GROUP!r}")


def _instantiate(obj, spec: str, kw: dict) -> Reward:
    r = obj(**kw) if isinstance(obj, type) else obj
    if not isinstance(r, Reward) and callable(r) and not isinstance(obj, type):
        r = obj(**kw)  # a factory function
    if not isinstance(r, Reward):
        raise RewardError(f"{spec!r} is not a Reward (needs a 'name' and __call__(f) -> float)")
    return r


# -- the measuring child ------------------------------------------------------------------------
def reference_backend(f: Factorization, dtype, device) -> Callable:
    """One level of ``f`` with torch ops: combinations of blocks, R products, output sums."""
    import torch
    f.require_real()
    n, m, p = f.shape
    U, V, W = (torch.tensor([[float(x) for x in row] for row in a.tolist()], dtype=dtype, device=device)
               for a in (f.U, f.V, f.W))

    def matmul(a, b):
        M, K = a.shape
        N = b.shape[1]
        bm, bk, bn = M // n, K // m, N // p
        A = a.reshape(n, bm, m, bk).permute(0, 2, 1, 3).reshape(n * m, bm, bk)
        B = b.reshape(m, bk, p, bn).permute(0, 2, 1, 3).reshape(m * p, bk, bn)
        L = torch.einsum("xr,xij->rij", U, A)
        Rt = torch.einsum("yr,yjk->rjk", V, B)
        P = torch.bmm(L, Rt)
        C = torch.einsum("zr,rik->zik", W, P)
        return C.reshape(n, p, bm, bn).permute(0, 2, 1, 3).reshape(M, N)

    return matmul


def _measure_main(path: str, config: dict) -> dict:
    import torch
    from compiler.algebra.formats import load

    cfg = RuntimeConfig(**config)
    torch.set_num_threads(cfg.threads)
    (f,) = load(path)
    dtype = getattr(torch, cfg.dtype)
    if cfg.backend == "reference":
        fn = reference_backend(f, dtype, cfg.device)
    elif ":" in cfg.backend:
        mod, _, attr = cfg.backend.partition(":")
        fn = getattr(importlib.import_module(mod), attr)(f, dtype, cfg.device)
    else:  # the compiler's backend registry
        from compiler.codegen.pipeline import compile as compile_algorithm
        fn = compile_algorithm(f, backend=cfg.backend, levels=1)
    n, m, p = f.shape
    step = n * m * p  # every block dimension divides the size
    size = -(-cfg.size // step) * step
    g = torch.Generator(device="cpu").manual_seed(0)
    # Small integers: a bilinear algorithm with integer coefficients is exact on them, so a wrong
    # kernel is caught by equality, not by a tolerance.
    a = torch.randint(-2, 3, (size, size), generator=g).to(dtype=dtype, device=cfg.device)
    b = torch.randint(-2, 3, (size, size), generator=g).to(dtype=dtype, device=cfg.device)
    ref = torch.matmul(a.double(), b.double())
    got = fn(a, b)
    if f.is_integral and not torch.equal(got.double(), ref):
        raise SystemExit("wrong product on small-integer inputs")

    def timeit(fn2) -> float:
        for _ in range(cfg.warmup):
            fn2(a, b)
        ts = []
        for _ in range(cfg.repeats):
            if cfg.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn2(a, b)
            if cfg.device.startswith("cuda"):
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        ts.sort()
        return ts[len(ts) // 2]

    t_alg, t_ref = timeit(fn), timeit(torch.matmul)
    return {"ratio": t_alg / t_ref, "t_alg": t_alg, "t_torch": t_ref, "size": size}


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="fastmm runtime-reward child: time one factorization")
    ap.add_argument("--measure", required=True, help="a fastmm .npz holding one factorization")
    ap.add_argument("--config", required=True, help="RuntimeConfig as JSON")
    a = ap.parse_args(argv)
    print(json.dumps(_measure_main(a.measure, json.loads(a.config))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
