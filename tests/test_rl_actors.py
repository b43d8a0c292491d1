"""Scale-out: a 2-process local run and (if Ray is installed) a Ray run of a tiny config; resume; CLI."""

from __future__ import annotations

import argparse
import json
import os

import pytest

torch = pytest.importorskip("torch")

from compiler.algebra.formats import load  # noqa: E402
from search.rl.actors import run  # noqa: E402
from search.rl.cli import add_arguments, parse_budget  # noqa: E402
from search.rl.cli import run as cli_run  # noqa: E402
from search.rl.config import GameConfig, MCTSConfig, NetConfig, RunConfig, TrainConfig  # noqa: E402

# <1,1,2> (dims 1×2×2, rank 2) over coefficients {0,1}: tiny enough that a few games solve it.
TINY = RunConfig(game=GameConfig(shape=(1, 1, 2), coefficients=(0, 1)),
                 net=NetConfig(d_model=16, heads=2, torso_layers=1, policy_layers=1, quantiles=4),
                 mcts=MCTSConfig(simulations=8, samples=8),
                 train=TrainConfig(batch_size=8, warmup_steps=150, checkpoint_every=10, train_steps_per_game=2))


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the learner of a run uses one thread (actors.run sets it too)
    yield
    torch.set_num_threads(n)


def _metrics(path):
    return [json.loads(line) for line in open(path)]


def test_two_process_local_run(tmp_path):
    # Up to 150 s: two spawned actors each import torch (seconds each on a shared 2-core machine);
    # the run stops after 10 games, enough for both actors to have returned some.
    cfg = TINY.__class__(**{**TINY.__dict__, "workers": 2, "budget_s": 150.0, "max_games": 10, "run_dir": str(tmp_path)})
    res = run(cfg, progress=False)
    assert res.games >= 2
    pids = {m["actor_pid"] for m in _metrics(res.metrics_path) if "actor_pid" in m}
    assert len(pids) == 2 and os.getpid() not in pids  # two actor processes, not the learner
    assert all(f.verify() and f.rank <= 2 for f in res.best)  # whatever was found is exact
    assert (tmp_path / "checkpoint.pt").exists() and res.train_steps > TINY.train.warmup_steps


def test_single_process_run_is_reproducible_and_resumable(tmp_path):
    cfg = TINY.__class__(**{**TINY.__dict__, "workers": 0, "budget_s": 1e9, "target_rank": 2, "seed": 3})
    a = run(cfg.__class__(**{**cfg.__dict__, "run_dir": str(tmp_path / "a")}), progress=False)
    b = run(cfg.__class__(**{**cfg.__dict__, "run_dir": str(tmp_path / "b")}), progress=False)
    assert a.best_rank == b.best_rank == 2
    assert a.games == b.games  # same seed, one process: the same games
    assert [f.digest for f in a.best] == [f.digest for f in b.best]
    # Resume: the checkpoint's counters carry over and the run continues from them.
    c = run(cfg.__class__(**{**cfg.__dict__, "run_dir": str(tmp_path / "a")}), resume=True, progress=False)
    assert c.games >= a.games and c.train_steps >= a.train_steps


@pytest.mark.slow  # Ray's start-up dominates: ~170 s on the loaded 2-core machine
def test_ray_run_of_a_tiny_config(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is optional (extra 'distributed'); not installed here")
    # Ray's own start-up takes tens of seconds on a loaded 2-core machine; stop after 3 games.
    cfg = TINY.__class__(**{**TINY.__dict__, "workers": 1, "ray": True, "budget_s": 240.0, "max_games": 3,
                            "run_dir": str(tmp_path)})
    try:
        res = run(cfg, progress=False)
    finally:
        ray.shutdown()
    assert res.games >= 1
    pids = {m["actor_pid"] for m in _metrics(res.metrics_path) if "actor_pid" in m}
    assert pids and os.getpid() not in pids  # games came from a Ray worker process
    assert all(f.verify() for f in res.best)


def test_cli_writes_verified_factorizations_with_provenance(tmp_path):
    ap = argparse.ArgumentParser()
    for a, d in [("--shape", "1,1,2"), ("--method", "rl"), ("--field", "Z"), ("--budget", "5m"), ("--reward", "rank"),
                 ("--out", str(tmp_path / "f.npz")), ("--seed", "0"), ("--target-rank", "2")]:
        ap.add_argument(a, default=d)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--ray", action="store_true")
    add_arguments(ap)
    args = ap.parse_args(["--coefficients", "0,1", "--d-model", "16", "--torso-layers", "1", "--policy-layers", "1",
                          "--simulations", "8", "--samples", "8", "--warmup-steps", "150", "--batch-size", "8",
                          "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert cli_run(args) == 0
    (f, *_) = load(tmp_path / "f.npz")
    assert f.verify() and f.rank == 2 and f.shape == (1, 1, 2)
    assert "rl" in f.provenance.method and "seed=0" in f.provenance.notes and "wall_time_s=" in f.provenance.notes


def test_parse_budget():
    assert parse_budget("30m") == 1800 and parse_budget("2h") == 7200 and parse_budget("90s") == 90
    assert parse_budget(45) == 45.0 and parse_budget("12") == 12
    with pytest.raises(argparse.ArgumentTypeError):
        parse_budget("soon")


def test_cli_rollout_options_reach_the_search_config():
    from search.rl.cli import config_from_args
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="2,2,2")
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args(["--rollouts", "--rollout-batch", "64", "--rollout-temperature", "0.5"]))
    assert cfg.mcts.rollouts and cfg.mcts.rollout_batch == 64 and cfg.mcts.rollout_temperature == 0.5
    assert config_from_args(ap.parse_args([])).mcts.rollout_batch == 1  # default: one rollout (AlphaGo's)


def test_cli_pruning_and_order_options_reach_the_configs():
    from search.rl.cli import config_from_args
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="2,2,2")
    add_arguments(ap)
    cfg = config_from_args(ap.parse_args(["--ordered", "--rollout-candidates", "16", "--first-play", "max",
                                          "--basis-probability", "0.1"]))
    assert cfg.train.basis_probability == 0.1
    assert cfg.game.ordered and cfg.mcts.prune and cfg.mcts.rollout_candidates == 16 and cfg.mcts.first_play == "max"
    off = config_from_args(ap.parse_args(["--no-prune"]))
    assert not off.mcts.prune and not off.game.ordered and off.mcts.first_play == "value"
