"""``python -m search.ablate``: AlphaTensor's ablation table at small scale.

Runs the agent once per configuration (the full agent, then each ingredient switched off) with
the same seed, shape and time budget, and prints configuration → best rank found, in the layout
of AlphaTensor's ablation table, plus the best game return (−rank when solved, else −(steps +
rank bound of the residual)) so that configurations that solve nothing are still ranked.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from search.rl.cli import parse_budget
from search.rl.config import GameConfig, MCTSConfig, NetConfig, RunConfig, TrainConfig

ABLATIONS: list[tuple[str, dict]] = [
    ("AlphaTensor-style agent (all on)", {}),
    ("without synthetic demonstrations", {"synthetic": False}),
    ("without self-play", {"self_play": False}),
    ("without change of basis", {"change_of_basis": False}),
    ("without signed permutations", {"signed_permutations": False}),
    ("without retraining on best games", {"retrain_best": False}),
    # Not AlphaTensor's: this project's leaf evaluation by a batch of policy rollouts (best return),
    # the lever tried against the naive attractor (search/rl/README.md). Only when the base uses it.
    ("without batched best-of-N rollouts", {"rollout_batch": 1}),
    # This project's exact pruning (flattening and Koszul rank bounds, the rank-one endgame) and the
    # rollouts from the search root with a hot first move (search/rl/README.md). Only when the base uses them.
    ("without exact pruning", {"prune": False}),
    ("without root rollouts", {"root_rollouts": 0}),
]

# What each search switch sets to turn its ingredient off, and whether the base uses it at all.
SEARCH_OFF = {"rollout_batch": lambda m: m.rollouts and m.rollout_batch > 1,
              "prune": lambda m: m.prune,
              "root_rollouts": lambda m: m.rollouts and m.root_rollouts > 0}


def best_return(metrics_path: str) -> float | None:
    rets = [json.loads(line).get("game_return") for line in open(metrics_path)]
    rets = [r for r in rets if r is not None]
    return max(rets) if rets else None


# Switches that change what the warmup trains on; every other row can start from the full agent's
# state after warmup (same seed, same synthetic batches: the warmup would be identical, and its
# minutes are then spent once). The row's budget still counts the warmup's wall time.
WARMUP_SWITCHES = {"synthetic", "canonicalize"}


def run_ablation(base: RunConfig, out_dir: Path, only: list[str] | None = None, progress: bool = False,
                 share_warmup: bool = False) -> list[dict]:
    import shutil

    from search.rl.actors import run
    rows = []
    for label, off in ABLATIONS:
        key = "full" if not off else next(iter(off))
        if only and key not in only:
            continue
        if any(k in SEARCH_OFF and not SEARCH_OFF[k](base.mcts) for k in off):
            continue  # the base plays without this ingredient: the row would repeat the full agent
        t_off = {k: v for k, v in off.items() if k in TrainConfig.__dataclass_fields__}
        m_off = {k: v for k, v in off.items() if k in MCTSConfig.__dataclass_fields__}
        cfg = replace(base, train=replace(base.train, **t_off), mcts=replace(base.mcts, **m_off),
                      run_dir=str(out_dir / key))
        t0 = time.time()
        warm = out_dir / "full" / "warmup.pt"
        resume = share_warmup and key != "full" and key not in WARMUP_SWITCHES and warm.exists()
        if resume:
            Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(warm, Path(cfg.run_dir) / "checkpoint.pt")
        res = run(cfg, resume=resume, progress=progress)
        row = {"configuration": label, "switch": key, "best_rank": res.best_rank,
               "best_return": best_return(res.metrics_path), "games": res.games, "solved_games": res.solved_games,
               "train_steps": res.train_steps, "wall_s": round(time.time() - t0, 1),
               "first_found_s": res.first_found_s, "shared_warmup": resume}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict], base: RunConfig) -> str:
    n, m, p = base.game.shape
    coeffs = ",".join(map(str, sorted(base.game.coefficients)))
    head = (f"<{n},{m},{p}> over {base.game.field}, coefficients {{{coeffs}}}, step limit "
            f"{base.game.steps}, {base.budget_s:.0f} s per configuration, seed {base.seed}, workers {base.workers}")
    lines = [head, "", "| configuration | best rank found | first found at (s) | best game return | games (solved) "
             "| train steps |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        first = ", ".join(f"r{k}: {v}" for k, v in sorted(r.get("first_found_s", {}).items(), key=lambda kv: int(kv[0])))
        lines.append(f"| {r['configuration']} | {r['best_rank'] if r['best_rank'] is not None else '—'} | "
                     f"{first or '—'} | {r['best_return']} | {r['games']} ({r['solved_games']}) | {r['train_steps']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="small-scale AlphaTensor ablation table")
    ap.add_argument("--shape", default="2,2,2")
    ap.add_argument("--field", default="Z")
    ap.add_argument("--coefficients", default="-1,0,1")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--budget", default="4m", help="per configuration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--policy-layers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--simulations", type=int, default=MCTSConfig.simulations)
    ap.add_argument("--samples", type=int, default=MCTSConfig.samples)
    ap.add_argument("--sample-temperature", type=float, default=MCTSConfig.sample_temperature)
    ap.add_argument("--rollouts", action="store_true")
    ap.add_argument("--rollout-batch", type=int, default=MCTSConfig.rollout_batch)
    ap.add_argument("--rollout-temperature", type=float, default=MCTSConfig.rollout_temperature)
    ap.add_argument("--rollout-candidates", type=int, default=MCTSConfig.rollout_candidates)
    ap.add_argument("--rollout-first-temperature", type=float, default=MCTSConfig.rollout_first_temperature)
    ap.add_argument("--root-rollouts", type=int, default=MCTSConfig.root_rollouts)
    ap.add_argument("--first-play", choices=("value", "max"), default=MCTSConfig.first_play)
    ap.add_argument("--no-prune", action="store_true")
    ap.add_argument("--basis-probability", type=float, default=TrainConfig.basis_probability)
    ap.add_argument("--target-rank", type=int, default=0, help="stop a configuration's run at this rank")
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--demo-min-rank", type=int, default=TrainConfig.demo_min_rank)
    ap.add_argument("--only", default="", help="comma-separated switches (full, synthetic, self_play, ...)")
    ap.add_argument("--out-dir", default="runs/ablation")
    ap.add_argument("--share-warmup", action="store_true",
                    help="rows whose switch does not touch the warmup start from the full agent's warmup state")
    a = ap.parse_args(argv)
    from compiler.algebra.factors import parse_shape
    field = "Z2" if a.field.upper() == "Z2" else "Z"
    base = RunConfig(
        game=GameConfig(shape=parse_shape(a.shape), field=field, max_steps=a.max_steps,
                        coefficients=tuple(int(x) for x in a.coefficients.split(",")) if field == "Z" else (0, 1)),
        net=replace(NetConfig(), d_model=a.d_model, policy_layers=a.policy_layers),
        mcts=replace(MCTSConfig(), simulations=a.simulations, samples=a.samples,
                     sample_temperature=a.sample_temperature, rollouts=a.rollouts,
                     rollout_batch=a.rollout_batch, rollout_temperature=a.rollout_temperature,
                     rollout_candidates=a.rollout_candidates, rollout_first_temperature=a.rollout_first_temperature,
                     root_rollouts=a.root_rollouts, first_play=a.first_play, prune=not a.no_prune),
        train=replace(TrainConfig(), batch_size=a.batch_size, warmup_steps=a.warmup_steps, lr=a.lr,
                      demo_min_rank=a.demo_min_rank, basis_probability=a.basis_probability),
        seed=a.seed, budget_s=parse_budget(a.budget), workers=a.workers, target_rank=a.target_rank)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = run_ablation(base, out, [s for s in a.only.split(",") if s] or None, share_warmup=a.share_warmup)
    text = table(rows, base)
    (out / "table.md").write_text(text + "\n")
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
