"""``python -m search.run``: find factorizations and append the verified ones, with provenance.

    python -m search.run --shape 3,3,3 --method flips --field Z --target-rank 23 --budget 60s \\
        --out factors/3x3x3-flips.npz
    python -m search.run --shape 3,3,3 --target-rank 23 --objective additions --budget 10m --out ...
    python -m search.run --shape 4,4,4 --field Z2 --target-rank 47 --lift --workers 2 --budget 1h ...
    python -m search.run --shape 2,2,2 --method rl ...   (the RL agent: search.rl.cli)

The symmetric walk with fresh lineages (Moosbauer & Poole's runs) for square shapes, measured on
one core: <4,4,4> 49 over Z in seconds (20 of 20 seeds), <5,5,5> 93 mod 2 in 7–13 min (4 of 4
seeds), lifted:

    python -m search.run --shape 4,4,4 --field Z --symmetric --cubes 0+1+2+3 --target-rank 49 \
        --plateau 1000 --path-length 1100000 --max-plus 18 --reset-flips 1000000 --fresh-resets ...
    python -m search.run --shape 5,5,5 --field Z2 --symmetric --cubes 0+4,1+3,2 --target-rank 93 \
        --plateau 16667 --path-length 34000000 --max-plus 36 --reset-flips 33000000 --fresh-resets \
        --lift --budget 1h ...

``--method flips`` (default) walks the flip graph (search.flips) from ``--start``: ``naive``
(default), a library name (``strassen``, ``laderman``, ``4x4x4``...), a factor file
(``path.npz`` or ``path.npz:name``), or a Kronecker product ``A*B`` of those. ``--objective``
is ``rank`` (default) or any reward plugin spec of search.rewards (``additions`` = fewest
additions after the compiler's CSE): the walk first reaches ``--target-rank``, then spends the
rest of the budget on rank-preserving flips that maximise the reward. ``--field Z2`` walks mod 2;
``--lift`` then tries Hensel lifting (search.lift) and saves the lifted scheme when it lifts;
``--lift ternary`` looks for signs instead (a scheme valid over Z with coefficients in {-1,0,1}),
and while the scheme has none it keeps walking mod 2 at that rank (flips keep the rank) and tries
the schemes it meets, for the rest of the budget.

Everything written is verified exactly first; ``--out`` is read, extended and rewritten
atomically (a scheme already present, by digest, is not added twice).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from compiler.algebra.factors import Factorization, FactorizationError, Provenance, naive, parse_shape

FLIPS = "flips"
METHODS = (FLIPS, "rl")


def parse_budget(text, default: float = 600.0) -> float:
    """A wall-time budget in seconds, for ``--budget`` of every search command.

    Grammar: a number of seconds (``45``, ``2.5``, or an int/float), or one or more
    ``<number><unit>`` parts with unit ``h``, ``m`` or ``s`` in any case, blanks allowed between
    them (``90s``, ``10m``, ``2h``, ``1h30m``, ``1h 30m``). ``None`` gives ``default``.
    """
    import re
    if text is None:
        return float(default)
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    if re.fullmatch(r"[0-9]*\.?[0-9]+", s):
        return float(s)
    parts = re.findall(r"([0-9]*\.?[0-9]+)\s*([hms])", s)
    if not parts or "".join(a + b for a, b in parts) != re.sub(r"\s+", "", s):
        raise argparse.ArgumentTypeError(f"cannot read a time budget from {text!r} (use 90s, 10m, 1h30m or seconds)")
    return sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts)


def common_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m search.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", required=True, help="n,m,p (e.g. 4,4,4)")
    ap.add_argument("--method", choices=METHODS, default=FLIPS)
    ap.add_argument("--field", default="Z", help="Z (ternary coefficients, valid over Z) or Z2 (mod 2)")
    ap.add_argument("--target-rank", type=int, default=None)
    ap.add_argument("--objective", "--reward", dest="reward", default="rank",
                    help="rank, additions, or a reward plugin spec (search.rewards.load_reward)")
    ap.add_argument("--budget", default="10m", help="wall time: 90s, 10m, 1h")
    ap.add_argument("--workers", type=int, default=1, help="parallel walkers (processes)")
    ap.add_argument("--ray", action="store_true", help="run the walkers as Ray tasks")
    ap.add_argument("--out", default=None, help="factor file to append verified schemes to")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def add_flip_arguments(ap: argparse.ArgumentParser) -> None:
    from search.flips.walker import WalkConfig
    d = WalkConfig()
    g = ap.add_argument_group("flips (flip-graph local search)")
    g.add_argument("--start", default="naive", help="naive | library name | file.npz[:name] | A*B")
    g.add_argument("--lift", nargs="?", const="hensel", choices=("hensel", "ternary"), default=None,
                   help="Z2: Hensel-lift the result (or, with 'ternary', find signs valid over Z, walking on at "
                        "the same rank until a scheme has them) and save it when it lifts")
    g.add_argument("--plateau", type=int, default=d.plateau, help="flips without a reduction before a plus transition")
    g.add_argument("--plateau-min", type=int, default=None,
                   help="draw the plateau per path from [plateau-min, plateau] (default: fixed --plateau)")
    g.add_argument("--path-length", type=int, default=d.path_length, help="flips from one restart to the next")
    g.add_argument("--max-plus", type=int, default=d.max_plus, help="plus transitions may go this far above the best rank")
    g.add_argument("--pool-size", type=int, default=d.pool_size)
    g.add_argument("--reset-flips", type=int, default=None,
                   help="flips without lowering a lineage's rank before a new lineage from the start or a recent improvement")
    g.add_argument("--max-flips", type=int, default=None, help="stop after this many flips per walker")
    g.add_argument("--temperature", type=float, default=None,
                   help="objective walk: temperature (sides walk: in additions, default 0.7; proxy walk: start temperature in additions before CSE)")
    g.add_argument("--final-temperature", type=float, default=None)
    g.add_argument("--walk", choices=("sides", "proxy"), default="sides",
                   help="objective walk over Z: 'sides' (plateau walk on the compiler's CSE counted per side, "
                        "search.flips.sides) or 'proxy' (annealing on additions before CSE, search.flips.objective)")
    g.add_argument("--symmetric", action="store_true",
                   help="<n,n,n> only: walk the symmetric flip graph (Z3-invariant schemes, orbit by orbit) from naive")
    g.add_argument("--splits", type=int, default=None,
                   help="--symmetric: fixed terms to split at the start (default: as the target's residue mod 3 needs)")
    g.add_argument("--cubes", default=None, metavar="PARTS",
                   help="--symmetric: diagonal start, the naive fixed terms (E_ii)^3 merged along a partition of "
                        "0..n-1 written like 0+4,1+3,2 (one fixed term (sum of E_ii)^3 per part; Moosbauer & Poole)")
    g.add_argument("--fresh-resets", action="store_true",
                   help="--symmetric: --reset-flips restarts from the start itself (independent runs), "
                        "not from a recent improvement")
    g.add_argument("--levels", action="store_true",
                   help="rank by rank with pools (search.flips.pools): --pool-size distinct schemes per rank, "
                        "each runner walks --path-length flips from a random pool member; with --workers N, "
                        "N such searches (seeds seed..seed+N-1) run side by side and the first to reach the "
                        "target stops the others")
    g.add_argument("--log", default=None, help="append one JSON line per event to this file")
    g.add_argument("--no-progress", action="store_true")


def _walk_field(text: str) -> str:
    t = str(text).upper()
    if t in ("Z2", "F2", "GF2", "GF(2)"):
        return "Z2"
    if t in ("Z", "Q", "TERNARY"):
        return "Z"
    raise SystemExit(f"--field must be Z or Z2, got {text!r}")


def load_start(spec: str, shape: tuple[int, int, int]) -> Factorization:
    """The starting scheme: naive, a library name, a file (``path[:name]``), or ``A*B``."""
    from compiler.algebra.constructions import kron, permute_shape
    if "*" in spec:
        parts = [load_start_one(s.strip()) for s in spec.split("*")]
        f = parts[0]
        for g in parts[1:]:
            f = kron(f, g)
    else:
        f = load_start_one(spec, shape)
    if f.shape != shape:
        if sorted(f.shape) != sorted(shape):
            raise SystemExit(f"--start {spec!r} is {f.shape_str}, not the requested <{','.join(map(str, shape))}>")
        f = permute_shape(f, shape)
    return f


def load_start_one(spec: str, shape: tuple[int, int, int] | None = None) -> Factorization:
    from compiler.algebra.formats import load
    from compiler.algebra.library import library_algorithm
    if spec == "naive":
        if shape is None:
            raise SystemExit("'naive' inside a product needs a shape: write e.g. naive2x2x2")
        return naive(*shape)
    if spec.startswith("naive") and spec[5:]:
        return naive(*parse_shape(spec[5:]))
    path, _, name = spec.partition(":")
    if Path(path).exists():
        fs = load(path, name=name or None)
        if not name and shape is not None:
            same = [f for f in fs if sorted(f.shape) == sorted(shape)]
            fs = same or fs
        return min(fs, key=lambda f: f.rank)
    try:
        return library_algorithm(spec)
    except Exception as e:  # the library names its own problem
        raise SystemExit(f"--start {spec!r}: not a file, not 'naive', and not a library algorithm ({e})") from e


class _Reporter:
    """Progress: a rich status line (best rank / objective over time) and an optional JSON log."""

    def __init__(self, args, budget: float):
        self.t0 = time.perf_counter()
        self.log = open(args.log, "a") if args.log else None
        self.quiet = args.no_progress
        self.best: dict[str, float] = {}
        self.progress = None
        if not self.quiet:
            try:
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
                self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                                         transient=False)
                self.task = self.progress.add_task("flip search", total=budget)
                self.progress.start()
            except ImportError:
                self.progress = None

    def event(self, kind: str, value: float, **kw) -> None:
        t = time.perf_counter() - self.t0
        better = kind not in self.best or (value < self.best[kind] if kind == "rank" else value > self.best[kind])
        if better:
            self.best[kind] = value
        rec = {"t": round(t, 3), kind: value} | kw
        if self.log:
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()
        if better and not self.quiet:
            msg = f"[{t:8.1f}s] best {kind} {value:g}" + "".join(f" {k}={v}" for k, v in kw.items())
            if self.progress is not None:
                self.progress.console.log(msg)
                self.progress.update(self.task, completed=min(t, self.progress.tasks[0].total),
                                     description=" ".join(f"{k} {v:g}" for k, v in self.best.items()))
            else:
                print(msg, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.log:
            self.log.close()


def run_flips(args: argparse.Namespace) -> int:
    from search.flips.parallel import run_walkers
    from search.flips.walker import WalkConfig
    shape = parse_shape(args.shape)
    field = _walk_field(args.field)
    budget = parse_budget(args.budget)
    start = load_start(args.start, shape)
    if field == "Z" and start.field == "Z2":
        raise SystemExit(f"--start {args.start!r} is a mod-2 scheme: use --field Z2 (and --lift)")
    command = "python -m search.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    reward = None
    if args.reward != "rank":
        from search.rewards import load_reward
        reward = load_reward(args.reward)
    target = args.target_rank
    cfg = WalkConfig(field=field, target_rank=target, budget_s=budget, max_flips=args.max_flips,
                     path_length=args.path_length, plateau=args.plateau, plateau_min=args.plateau_min, max_plus=args.max_plus,
                     pool_size=args.pool_size, reset_flips=args.reset_flips, seed=args.seed)
    method = (f"flip-graph random walk ({'ternary coefficients, valid over Z' if field == 'Z' else 'mod 2'}; "
              f"reductions, plus transitions, pools and restarts)")
    prov = Provenance(source="fastmm search.run", found_by="fastmm flip-graph search (search.flips)",
                      method=method, date=started)
    rep = _Reporter(args, budget)
    t0 = time.perf_counter()
    results = []
    best = start
    try:
        rep.event("rank", start.rank, start=start.label())
        if target is None or start.rank > target or reward is None:
            # with an objective, spend at most half the budget on reaching the rank
            rank_cfg = replace(cfg, budget_s=budget / 2) if reward is not None else cfg
            if args.symmetric:
                res, start = _symmetric(shape, rank_cfg, args, prov, rep)  # it walks from its own start
                results = [res]
            elif args.levels:
                results = _levels(start, rank_cfg, args, prov, rep)
            else:
                results = run_walkers(start, rank_cfg, args.workers, use_ray=args.ray, provenance=prov,
                                      on_event=lambda w, t, r: rep.event("rank", r, worker=w) if r >= 0 else None)
            best = min((r.best for r in results), key=lambda f: f.rank)
        flips = sum(r.flips for r in results)
        walk_s = max((r.seconds for r in results), default=0.0)
        found = [best]
        value = None
        if reward is not None:
            found, value, evals = _optimise(best, reward, field, budget - (time.perf_counter() - t0), args, rep, prov)
    finally:
        rep.close()
    wall = time.perf_counter() - t0
    summary = {"shape": list(shape), "field": field, "objective": args.reward, "start": start.label(),
               "start_rank": start.rank, "best_rank": best.rank, "target_rank": target,
               "reached_target": target is not None and best.rank <= target, "wall_s": round(wall, 2),
               "rank_walk_s": round(walk_s, 2), "flips": flips, "workers": args.workers,
               "flips_per_s_per_worker": round(flips / max(walk_s, 1e-9) / max(1, args.workers)) if flips else 0,
               "flips_per_cpu_s": round(flips / max(sum(r.cpu_seconds for r in results), 1e-9)) if flips else 0,
               "cpu_s": round(sum(r.cpu_seconds for r in results), 2),
               "first_reached_s": {str(rk): round(min(t for r in results for t, rr in r.history if rr <= rk), 2)
                                   for rk in sorted({rr for r in results for _, rr in r.history})},
               "seed": args.seed, "started": started}
    if value is not None:
        summary["objective_value"] = value
        summary["objective_evaluations"] = evals  # reward (e.g. CSE) calls; the proxy pre-filters the rest
    lifted = None
    if field == "Z2" and args.lift == "hensel":
        from search.lift import hensel_lift
        if args.symmetric or _invariant(best):  # along the orbits first (search.flips.symmetric)
            lr, summary["lift"] = _lift_invariant(best)
        else:
            lr = hensel_lift(best)
            summary["lift"] = lr.describe()
        if lr.ok:
            lifted = lr.factorization
    elif field == "Z2" and args.lift == "ternary":
        lr, tried, lift_s = _ternary_walk(best, budget - (time.perf_counter() - t0), args.seed)
        summary["lift"] = lr.describe() + f" (schemes tried: {tried}, {lift_s:.1f}s)"
        summary["wall_s"] = round(time.perf_counter() - t0, 2)
        if lr.ok:
            lifted = lr.factorization
            summary["ternary_rank"] = lifted.rank
    print(json.dumps(summary), flush=True)
    if args.out:
        n, m, p = shape
        notes = (f"command: {command}; seed {args.seed}; wall {wall:.1f}s; flips {flips}; start {start.label()}"
                 + (f"; {args.reward} {value:g}" if value is not None else ""))
        tag = "mod2" if field == "Z2" else "Z"
        named = []
        for f in found + ([lifted] if lifted is not None else []):
            if f.digest == start.digest:
                print(f"{f.label()} is the starting scheme itself: nothing new to append", flush=True)
                continue
            kind = "Z" if f.field == "Q" else tag
            nm = f"{n}x{m}x{p}-flips-r{f.rank}-{kind}" + (f"-{args.reward}" if value is not None else "") + f"-s{args.seed}"
            pv = f.provenance
            named.append(f.replace(name=nm, provenance=Provenance(
                prov.source, prov.found_by, pv.method or prov.method, started, (pv.notes + "; " if pv.notes else "") + notes)))
        from compiler.algebra.formats import append
        path, k = append(args.out, named)
        print(f"appended {k} verified scheme(s) to {path}", flush=True)
    return 0 if target is None or best.rank <= target else 1


def _levels(start: Factorization, cfg, args, prov: Provenance, rep: "_Reporter"):
    """Pooled, level-by-level searches (search.flips.pools), one per worker (seeds seed, seed+1, ...),
    as WalkResults; the first to reach the target stops the others."""
    from functools import partial

    from search.flips.parallel import run_walkers
    from search.flips.pools import PoolConfig, pool_search
    pcfg = PoolConfig(field=cfg.field, target_rank=cfg.target_rank, budget_s=cfg.budget_s, max_flips=cfg.max_flips,
                      pool_size=cfg.pool_size, runner_flips=cfg.path_length, plateau=cfg.plateau,
                      plateau_min=cfg.plateau_min, max_plus=cfg.max_plus, seed=cfg.seed)
    method = prov.method.replace("flip-graph random walk", "flip-graph random walk, rank by rank with pools")
    search = pool_search
    if args.workers == 1 and not args.ray:  # in-process: level events reach the log too
        search = partial(pool_search, on_level=lambda t, r, n, fl: rep.event("level", r, pool=n, flips=fl))
    return run_walkers(start, pcfg, args.workers, use_ray=args.ray, provenance=replace(prov, method=method),
                       search=search,
                       on_event=lambda w, t, r: rep.event("rank", r, worker=w) if r >= 0 else None)


def _symmetric(shape, cfg, args, prov: Provenance, rep: "_Reporter"):
    """One symmetric walker (search.flips.symmetric) from the naive <n,n,n>, as (WalkResult, the start it walked from)."""
    from search.flips.symmetric import SymmetricConfig, parse_parts, symmetric_walk_search
    from search.flips.walker import WalkResult
    n = shape[0]
    if shape != (n, n, n) or args.start != "naive":
        raise SystemExit("--symmetric walks square shapes <n,n,n> from the naive algorithm (no --start)")
    if args.workers != 1 or args.ray:
        raise SystemExit("--symmetric runs one walker (run several commands with different --seed)")
    scfg = SymmetricConfig(field=cfg.field, target_rank=cfg.target_rank, budget_s=cfg.budget_s,
                           max_flips=cfg.max_flips, path_length=cfg.path_length, plateau=cfg.plateau,
                           plateau_min=cfg.plateau_min, max_plus=cfg.max_plus, reset_flips=cfg.reset_flips,
                           pool_size=cfg.pool_size, splits=args.splits, seed=cfg.seed,
                           fresh_resets=args.fresh_resets, levels=args.levels,
                           parts=tuple(map(tuple, parse_parts(args.cubes, n))) if args.cubes else None)
    method = prov.method.replace("flip-graph random walk", "symmetric (Z3-invariant) flip-graph random walk"
                                 + (", rank by rank with pools" if args.levels else "")
                                 + (f", from the diagonal start {args.cubes}" if args.cubes else ""))
    res = symmetric_walk_search(n, scfg, on_best=lambda t, f: rep.event("rank", f.rank, worker=0),
                                provenance=replace(prov, method=method),
                                on_reset=lambda t, r: rep.event("lineage", r))
    return WalkResult(res.best, res.flips, res.seconds, res.history, 0, 0, res.cpu_seconds), res.start


def _invariant(f: Factorization) -> bool:
    from search.flips.symmetric import is_invariant
    n = f.shape[0]
    return f.shape == (n, n, n) and is_invariant(f)


def _lift_invariant(best: Factorization):
    """Lift a Z3-invariant mod-2 scheme, trying in turn: signs along the orbits (valid over Z,
    entries ±1, still invariant), Hensel along the orbits (integral only), plain signs, plain
    Hensel (integral first, then any). Returns (the last LiftReport, what each try said).

    Measured on a <5,5,5;99> from the 3-cube walk: the orbit-wise signs lift at the first
    candidate (5 s), while orbit-wise Hensel failed mod 8 for 64 choices of the free variables
    and the plain Hensel lift needed the denominators 3 and 5.
    """
    from search.flips.symmetric import orbit_tie
    from search.lift import hensel_lift, ternary_lift
    tie = orbit_tie(best)
    said = []
    for name, lift in (("orbit-wise signs", lambda: ternary_lift(best, tries=4096, tie=tie)),
                       ("orbit-wise Hensel", lambda: hensel_lift(best, tie=tie, tries=16, integral=True)),
                       ("signs", lambda: ternary_lift(best, tries=4096)),
                       ("Hensel over Z", lambda: hensel_lift(best, tries=16, integral=True)),
                       ("Hensel over Q", lambda: hensel_lift(best))):
        lr = lift()
        said.append(f"{name}: {lr.describe()}")
        if lr.ok:
            break
    return lr, "; ".join(said)


def _ternary_walk(best: Factorization, budget: float, seed: int):
    """Try signs on ``best`` (mod 2), then on schemes met by a rank-keeping mod-2 walk from it.

    Returns (last LiftReport, schemes tried, seconds). Each scheme costs one GF(2) reduction
    (``search.lift.ternary_lift``); the walk moves 20 000 flips between tries, so that the
    schemes tried differ in many terms.
    """
    import numpy as np

    from search.flips import kernel as K
    from search.flips.encoding import decode, encode
    from search.lift import ternary_lift
    t0 = time.perf_counter()
    lr = ternary_lift(best, tries=64, seed=seed)
    tried = 1
    P, N, R = encode(best, "Z2", capacity=best.rank + 2)
    rng = np.array([np.uint64(seed * 7919 + 12345)], np.uint64)
    out = np.zeros(5, np.int64)
    while not lr.ok and time.perf_counter() - t0 < budget:
        R = K.walk(P, N, R, True, 0, 20_000, 1 << 62, R, rng, out)  # no plus transitions: rank only falls
        if out[K.OUT_FLIPS] == 0:
            break
        g = decode(P, N, R, best.shape, "Z2", best.name, best.provenance)
        lr = ternary_lift(g, tries=64, seed=seed + tried)
        tried += 1
    return lr, tried, time.perf_counter() - t0


def _optimise(best: Factorization, reward, field: str, budget: float, args, rep: _Reporter, prov: Provenance):
    """Rank-preserving walk maximising the reward; returns ([best scheme], its reward)."""
    if field == "Z" and getattr(args, "walk", "sides") == "sides":
        return _optimise_sides(best, reward, budget, args, rep, prov)
    from search.flips.objective import ObjectiveConfig, improve
    ocfg = ObjectiveConfig(field=field, budget_s=max(budget, 0.0), seed=args.seed)
    if args.temperature is not None:
        ocfg = replace(ocfg, temperature=args.temperature)
    if args.final_temperature is not None:
        ocfg = replace(ocfg, final_temperature=args.final_temperature)
    method = prov.method + f"; then rank-preserving flips maximising reward {args.reward!r} (search.flips.objective)"
    res = improve(best, reward, ocfg, provenance=replace(prov, method=method),
                  on_best=lambda t, f, v: rep.event(args.reward, v, rank=f.rank))
    f = res.best
    if f.provenance.method != method:
        f = f.replace(provenance=replace(prov, method=method))
    return [f], res.best_value, res.evaluations


def _optimise_sides(best: Factorization, reward, budget: float, args, rep: _Reporter, prov: Provenance):
    """The plateau walk on per-side CSE counts (search.flips.sides); returns ([best scheme], its reward)."""
    from search.flips.sides import SidesConfig, sides_walk
    scfg = SidesConfig(budget_s=max(budget, 0.0), seed=args.seed)
    if args.temperature is not None:
        scfg = replace(scfg, temperature=args.temperature)
    method = prov.method + (f"; then rank-preserving flips and changes of basis maximising reward {args.reward!r}, "
                            "walking on the compiler's CSE counted per side (search.flips.sides)")
    t0 = time.perf_counter()
    res = sides_walk(best, reward, scfg, provenance=replace(prov, method=method),
                     on_best=lambda t, f, v: rep.event(args.reward, v, rank=f.rank))
    f = res.best
    first = next((t for t, v in res.history if v >= res.best_value), 0.0)
    note = (f"sides walk: {res.moves} moves, {res.accepted} accepted, {res.side_counts} sides counted, "
            f"{res.evaluations} reward calls, best reward {res.best_value:g} first at {first:.1f}s of "
            f"{time.perf_counter() - t0:.1f}s (start {res.start_value:g})")
    f = f.replace(provenance=replace(prov, method=method, notes=note))
    return [f], res.best_value, res.evaluations


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)  # first pass: which method's options to add
    pre.add_argument("--method", choices=METHODS, default=FLIPS)
    known, _ = pre.parse_known_args(argv)
    ap = common_parser()
    if known.method == "rl":
        try:
            rl_cli = importlib.import_module("search.rl.cli")
        except ImportError as e:
            raise SystemExit(f"--method rl needs the RL agent (search.rl.cli), which cannot be imported "
                             f"here: {e}") from e
        rl_cli.add_arguments(ap)
        return int(rl_cli.run(ap.parse_args(argv)) or 0)
    add_flip_arguments(ap)
    args = ap.parse_args(argv)
    try:
        return run_flips(args)
    except FactorizationError as e:
        raise SystemExit(f"error: {e}") from e


if __name__ == "__main__":
    raise SystemExit(main())
