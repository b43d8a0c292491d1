"""The ablation driver: one run per switch, and a table in AlphaTensor's layout."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("torch")

from search.ablate import ABLATIONS, run_ablation, table  # noqa: E402
from search.rl.config import GameConfig, MCTSConfig, NetConfig, RunConfig, TrainConfig  # noqa: E402

BASE = RunConfig(game=GameConfig(shape=(1, 1, 2), coefficients=(0, 1)),
                 net=NetConfig(d_model=16, heads=2, torso_layers=1, policy_layers=1, quantiles=4),
                 mcts=MCTSConfig(simulations=4, samples=4),
                 train=TrainConfig(batch_size=8, warmup_steps=10, train_steps_per_game=1),
                 budget_s=60.0, max_games=2, workers=0)


def test_every_switch_names_a_train_or_search_config_field():
    train, mcts = set(TrainConfig.__dataclass_fields__), set(MCTSConfig.__dataclass_fields__)
    for _, off in ABLATIONS:
        assert set(off) <= train | mcts
        # A switch turns an ingredient off: False for training switches; for the search, one rollout
        # per leaf, no pruning, no root rollouts.
        assert all(v is False for k, v in off.items() if k in train)
        assert all({"rollout_batch": 1, "prune": False, "root_rollouts": 0}[k] == v for k, v in off.items() if k in mcts)


def test_the_rollout_row_runs_only_when_the_base_uses_batched_rollouts(tmp_path):
    rows = run_ablation(BASE, tmp_path, only=["rollout_batch"])
    assert rows == []  # BASE has no rollouts: nothing to switch off
    base = replace(BASE, mcts=replace(BASE.mcts, rollouts=True, rollout_batch=4), max_games=1)
    rows = run_ablation(base, tmp_path, only=["rollout_batch"])
    assert [r["configuration"] for r in rows] == ["without batched best-of-N rollouts"]
    cfg = (tmp_path / "rollout_batch" / "config.json").read_text()
    assert '"rollout_batch": 1' in cfg


def test_ablation_rows_and_table(tmp_path):
    rows = run_ablation(BASE, tmp_path, only=["full", "self_play"])
    assert [r["switch"] for r in rows] == ["full", "self_play"]
    for r in rows:
        assert r["games"] == 2 and r["best_return"] is not None and r["best_return"] <= -2
    text = table(rows, BASE)
    assert "| AlphaTensor-style agent (all on) |" in text and "| without self-play |" in text
    assert "best rank found" in text.splitlines()[2]
    # The switch really reached the run: without self-play the replay buffer stays empty.
    assert (tmp_path / "self_play" / "checkpoint.pt").exists()
    assert replace(BASE.train, self_play=False).self_play is False


def test_the_pruning_and_root_rollout_rows_switch_their_ingredient_off(tmp_path):
    base = replace(BASE, mcts=replace(BASE.mcts, rollouts=True, rollout_batch=2, root_rollouts=4), max_games=1)
    rows = run_ablation(base, tmp_path, only=["prune", "root_rollouts"])
    assert [r["configuration"] for r in rows] == ["without exact pruning", "without root rollouts"]
    assert '"prune": false' in (tmp_path / "prune" / "config.json").read_text()
    assert '"root_rollouts": 0' in (tmp_path / "root_rollouts" / "config.json").read_text()
    assert run_ablation(BASE, tmp_path, only=["root_rollouts"]) == []  # BASE has no rollouts


def test_rows_can_share_the_full_agents_warmup(tmp_path):
    rows = run_ablation(BASE, tmp_path, only=["full", "self_play", "synthetic"], share_warmup=True)
    shared = {r["switch"]: r["shared_warmup"] for r in rows}
    assert shared == {"full": False, "self_play": True, "synthetic": False}  # no warmup without demos
    assert (tmp_path / "full" / "warmup.pt").exists()
    phases = [line for line in (tmp_path / "self_play" / "metrics.jsonl").read_text().splitlines() if "warmup" in line]
    assert not phases  # it resumed after the warmup instead of training it again
    assert all(r["train_steps"] >= BASE.train.warmup_steps for r in rows if r["switch"] != "synthetic")
