"""Self-play actors, as local processes (default) or Ray tasks (``--ray``), and the learner loop.

Both back ends run the same function, ``play_games(config, weights, seed, n)``: an actor receives
the learner's current weights with each task, plays ``n`` games and returns their records. The
learner keeps ``workers`` tasks in flight, trains between arrivals, checkpoints, logs metrics and
stops at the time budget or when a factorization of the target rank is found. ``workers=0`` plays
in the learner's own process (deterministic for a given seed).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from compiler.algebra.factors import Factorization
from search.rl.config import RunConfig
from search.rl.selfplay import GameRecord, play_game
from search.rl.train import Learner, net_from_weights

_REWARDS: dict = {}


def _reward(cfg: RunConfig):
    if cfg.reward == "rank":
        return None
    if cfg.reward not in _REWARDS:
        from search.rewards import load_reward
        _REWARDS[cfg.reward] = load_reward(cfg.reward)
    return _REWARDS[cfg.reward]


def provenance(cfg: RunConfig, seed: int) -> dict:
    return {"source": "fastmm search.run --method rl", "found_by": "fastmm RL agent (search.rl)", "date": time.strftime("%Y-%m-%d"),
            "method": "rl: TensorGame + sampled MCTS + transformer policy/value (AlphaTensor-style)",
            "notes": f"seed={cfg.seed} game_seed={seed} reward={cfg.reward}"}


def play_games(cfg_dict: dict, weights: bytes, seed: int, n: int) -> list[GameRecord]:
    """An actor's task: ``n`` self-play games with the given weights (one torch thread)."""
    torch.set_num_threads(1)
    cfg = RunConfig.from_dict(cfg_dict)
    net = net_from_weights(cfg, weights)
    rng = np.random.default_rng([cfg.seed, seed])
    recs = [play_game(net, cfg, rng, _reward(cfg), provenance(cfg, seed)) for _ in range(n)]
    for r in recs:
        r.info["actor_pid"] = os.getpid()
    return recs


class LocalActors:
    """``workers`` processes (spawned: no fork of a threaded torch)."""

    def __init__(self, workers: int) -> None:
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))

    def submit(self, *args) -> cf.Future:
        return self.pool.submit(play_games, *args)

    def ready(self, futures: list, timeout: float) -> list:
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return [f for f in futures if f in done]

    @staticmethod
    def result(f) -> list[GameRecord]:
        return f.result()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class RayActors:
    """The same tasks as Ray remote functions: ``ray.init(num_cpus=workers+1)`` locally or an address."""

    def __init__(self, workers: int, address: str = "") -> None:
        import ray
        self.ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
        self._remote = ray.remote(num_cpus=1)(play_games)

    def submit(self, *args):
        return self._remote.remote(*args)

    def ready(self, futures: list, timeout: float) -> list:
        done, _ = self.ray.wait(futures, num_returns=1, timeout=timeout)
        return done

    def result(self, f) -> list[GameRecord]:
        return self.ray.get(f)

    def close(self) -> None:
        pass  # the caller owns ray.init / ray.shutdown


@dataclass
class RunResult:
    best: list[Factorization] = field(default_factory=list)  # the lowest-rank distinct ones found
    best_rank: int | None = None
    games: int = 0
    solved_games: int = 0
    train_steps: int = 0
    seconds: float = 0.0
    first_found_s: dict = field(default_factory=dict)  # rank -> wall seconds when first found
    metrics_path: str = ""


def run(cfg: RunConfig, resume: bool = False, progress: bool = True, games_per_task: int = 1) -> RunResult:
    """Train and search until the budget is spent or ``target_rank`` is reached."""
    torch.set_num_threads(1)
    run_dir = Path(cfg.run_dir or "runs/rl")
    run_dir.mkdir(parents=True, exist_ok=True)
    learner = Learner(cfg)
    res = RunResult(metrics_path=str(run_dir / "metrics.jsonl"))
    found: dict[str, Factorization] = {}
    elapsed0 = 0.0
    ckpt = run_dir / "checkpoint.pt"
    if resume and ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        learner.load_state(st["learner"])
        elapsed0, res.games, res.solved_games = st["elapsed"], st["games"], st["solved_games"]
        res.first_found_s = st.get("first_found_s", {})
        for f in st.get("found", []):
            found[f.digest] = f
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    t0 = time.perf_counter() - elapsed0
    metrics = open(run_dir / "metrics.jsonl", "a")
    rng = np.random.default_rng([cfg.seed, 2])
    info: dict = {}

    def log(**kw) -> None:
        metrics.write(json.dumps({"t": round(time.perf_counter() - t0, 2), "games": res.games,
                                  "train_steps": learner.steps, "best_rank": res.best_rank, **kw}) + "\n")
        metrics.flush()

    def best_rank() -> int | None:
        return min((f.rank for f in found.values()), default=None)

    def take(rec: GameRecord) -> None:
        res.games += 1
        if cfg.train.self_play:  # without self-play, games only search: nothing is learned from them
            learner.add_game(rec)
        if rec.solved:
            res.solved_games += 1
            f = rec.factorization
            f.require_valid()
            found.setdefault(f.digest, f)
            key = str(f.rank)
            if key not in res.first_found_s:
                res.first_found_s[key] = round(time.perf_counter() - t0, 2)
        res.best_rank = best_rank()
        log(game_return=rec.total_reward, game_rank=rec.rank, game_s=round(rec.seconds, 2), **rec.info, **info)

    def save_ckpt() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"learner": learner.state(), "elapsed": time.perf_counter() - t0, "games": res.games,
                    "solved_games": res.solved_games, "first_found_s": res.first_found_s,
                    "found": sorted(found.values(), key=lambda f: f.rank)[:64], "config": cfg.to_dict()}, tmp)
        os.replace(tmp, ckpt)

    def done() -> bool:
        if time.perf_counter() - t0 >= cfg.budget_s or (cfg.max_games and res.games >= cfg.max_games):
            return True
        return bool(cfg.target_rank) and res.best_rank is not None and res.best_rank <= cfg.target_rank

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=int(cfg.budget_s), unit="s", desc=f"rl {cfg.game.shape}", leave=False)

    def tick() -> None:
        if bar is not None:
            bar.n = min(int(time.perf_counter() - t0), int(cfg.budget_s))
            bar.set_postfix(games=res.games, best=res.best_rank, steps=learner.steps, refresh=False)
            bar.refresh()

    t = cfg.train
    if t.synthetic and learner.steps < t.warmup_steps:
        while learner.steps < t.warmup_steps and not done():
            info = learner.train_step()
            if learner.steps % 50 == 0:
                log(phase="warmup", **info)
                tick()
        if learner.steps >= t.warmup_steps:
            save_ckpt()  # the state after warmup, also kept as warmup.pt (search.ablate reuses it)
            import shutil
            shutil.copyfile(ckpt, run_dir / "warmup.pt")
    last_ckpt = learner.steps
    can_train = t.synthetic or t.self_play
    actors = None
    try:
        # Two drivers of one loop: each plays (or collects) games, feeds them to take() and says
        # how many train steps follow.
        if cfg.workers > 0:
            actors = RayActors(cfg.workers, cfg.ray_address) if cfg.ray else LocalActors(cfg.workers)
            cfg_dict = cfg.to_dict()

            def submit():
                return actors.submit(cfg_dict, learner.weights(), int(rng.integers(2**31)), games_per_task)

            inflight = [submit() for _ in range(cfg.workers)]

            def play() -> int:
                for fut in actors.ready(inflight, timeout=0.0 if can_train else 1.0):
                    inflight.remove(fut)
                    for rec in actors.result(fut):
                        take(rec)
                    if not done():
                        inflight.append(submit())
                return int(can_train and bool(t.self_play and learner.buffer or t.synthetic))
        else:
            game_rng = np.random.default_rng([cfg.seed, 3])
            rew = _reward(cfg)

            def play() -> int:
                learner.net.eval()
                take(play_game(learner.net, cfg, game_rng, rew, provenance(cfg, cfg.seed)))
                return t.train_steps_per_game if can_train else 0

        while not done():
            for _ in range(play()):
                info = learner.train_step()
            tick()
            if learner.steps - last_ckpt >= t.checkpoint_every:
                save_ckpt()
                last_ckpt = learner.steps
    finally:
        if actors is not None:
            actors.close()
        if bar is not None:
            bar.close()
        res.seconds = time.perf_counter() - t0
        res.train_steps = learner.steps
        save_ckpt()
        log(phase="end")
        metrics.close()
    r = best_rank()
    res.best = sorted((f for f in found.values() if f.rank == r), key=lambda f: f.digest) if r else []
    return res
