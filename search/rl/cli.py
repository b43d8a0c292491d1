"""``python -m search.run --method rl``: the RL agent's arguments and entry point.

``search.run`` (owned by the flip-graph search) builds the common parser (shape, method, field,
budget, reward, workers, ray, out, seed, target_rank), calls ``add_arguments(parser)`` for the
options below, and dispatches ``--method rl`` to ``run(args)``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from search.rl.config import GameConfig, MCTSConfig, NetConfig, RunConfig, TrainConfig
from search.run import parse_budget  # one budget grammar for every search command

ABLATION_SWITCHES = ("synthetic", "self_play", "change_of_basis", "signed_permutations", "retrain_best",
                     "canonicalize", "reorder")


class _Group:
    """An argument group that skips options the common parser already defines (no conflicts)."""

    def __init__(self, parser: argparse.ArgumentParser, title: str) -> None:
        self.parser, self.group = parser, parser.add_argument_group(title)

    def add_argument(self, *names, **kw) -> None:
        if not any(n in self.parser._option_string_actions for n in names):
            self.group.add_argument(*names, **kw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = _Group(parser, "rl (AlphaTensor-style agent)")
    g.add_argument("--coefficients", default="", help="coefficient set, e.g. -1,0,1 (default -2..2; {0,1} for Z2)")
    g.add_argument("--max-steps", type=int, default=0, help="step limit of a game (default n·m·p)")
    g.add_argument("--ordered", action="store_true",
                   help="play terms in non-increasing size nnz(u)·nnz(v)·nnz(w) (every factorization stays reachable)")
    g.add_argument("--no-prune", action="store_true",
                   help="no exact pruning (flattening ranks, order entry bound) and no rank-one endgame in the search")
    g.add_argument("--rollout-candidates", type=int, default=MCTSConfig.rollout_candidates,
                   help="policy samples per rollout move where pruning can reject some (the first admissible is played)")
    g.add_argument("--rollout-first-temperature", type=float, default=MCTSConfig.rollout_first_temperature,
                   help="temperature of each rollout's first move (0: the rollout temperature)")
    g.add_argument("--root-rollouts", type=int, default=MCTSConfig.root_rollouts,
                   help="rollouts played from a freshly expanded search root (0: none)")
    g.add_argument("--first-play", choices=("value", "max"), default=MCTSConfig.first_play,
                   help="Q of unvisited sampled actions: the node's value, or optimistic (try each once)")
    g.add_argument("--simulations", type=int, default=MCTSConfig.simulations, help="MCTS simulations per move")
    g.add_argument("--samples", type=int, default=MCTSConfig.samples, help="K actions sampled per node")
    g.add_argument("--d-model", type=int, default=NetConfig.d_model)
    g.add_argument("--torso-layers", type=int, default=NetConfig.torso_layers)
    g.add_argument("--policy-layers", type=int, default=NetConfig.policy_layers)
    g.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    g.add_argument("--lr", type=float, default=TrainConfig.lr)
    g.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps,
                   help="supervised steps on synthetic demonstrations before self-play")
    g.add_argument("--basis-probability", type=float, default=TrainConfig.basis_probability,
                   help="fraction of games played in a random unimodular basis (with change of basis on)")
    g.add_argument("--demo-min-rank", type=int, default=TrainConfig.demo_min_rank,
                   help="fewest terms of a synthetic demonstration (ranks around the target's)")
    g.add_argument("--rollouts", action="store_true",
                   help="evaluate MCTS leaves by a policy rollout mixed with the value head (a solving rollout is played)")
    g.add_argument("--rollout-batch", type=int, default=MCTSConfig.rollout_batch,
                   help="rollouts per MCTS leaf, played as one network batch; the leaf gets their best return")
    g.add_argument("--rollout-temperature", type=float, default=MCTSConfig.rollout_temperature,
                   help="temperature of batched rollouts (0: the sample temperature)")
    g.add_argument("--sample-temperature", type=float, default=MCTSConfig.sample_temperature,
                   help="temperature of the policy's action samples in the search")
    g.add_argument("--root-noise", type=float, default=MCTSConfig.root_noise, help="Dirichlet noise fraction at the root")
    g.add_argument("--temperature-moves", type=int, default=MCTSConfig.temperature_moves,
                   help="moves sampled in proportion to visits before the most visited is taken")
    g.add_argument("--reward-lambda", type=float, default=1.0, help="λ in r' = r + λ·b for a non-rank reward b")
    g.add_argument("--ray-address", default="", help="Ray cluster address (default: ray.init locally)")
    g.add_argument("--run-dir", default="", help="checkpoints and metrics (default runs/rl-<shape>-s<seed>)")
    g.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    g.add_argument("--no-progress", action="store_true")
    for sw in ABLATION_SWITCHES:
        g.add_argument(f"--no-{sw.replace('_', '-')}", action="store_true", help=f"ablation: switch off {sw}")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from compiler.algebra.factors import parse_shape
    shape = parse_shape(args.shape)
    field = "Z2" if str(getattr(args, "field", "Z")).upper() in ("Z2", "F2", "GF2") else "Z"
    coeffs = tuple(int(x) for x in args.coefficients.split(",")) if getattr(args, "coefficients", "") else \
        ((0, 1) if field == "Z2" else GameConfig.coefficients)
    game = GameConfig(shape=shape, field=field, coefficients=coeffs, max_steps=getattr(args, "max_steps", 0),
                      ordered=bool(getattr(args, "ordered", False)))
    net = replace(NetConfig(), d_model=getattr(args, "d_model", NetConfig.d_model),
                  torso_layers=getattr(args, "torso_layers", NetConfig.torso_layers),
                  policy_layers=getattr(args, "policy_layers", NetConfig.policy_layers))
    mcts = replace(MCTSConfig(), simulations=getattr(args, "simulations", MCTSConfig.simulations),
                   samples=getattr(args, "samples", MCTSConfig.samples),
                   root_noise=getattr(args, "root_noise", MCTSConfig.root_noise),
                   rollouts=bool(getattr(args, "rollouts", False)),
                   rollout_batch=getattr(args, "rollout_batch", MCTSConfig.rollout_batch),
                   rollout_temperature=getattr(args, "rollout_temperature", MCTSConfig.rollout_temperature),
                   sample_temperature=getattr(args, "sample_temperature", MCTSConfig.sample_temperature),
                   temperature_moves=getattr(args, "temperature_moves", MCTSConfig.temperature_moves),
                   prune=not getattr(args, "no_prune", False),
                   rollout_candidates=getattr(args, "rollout_candidates", MCTSConfig.rollout_candidates),
                   first_play=getattr(args, "first_play", MCTSConfig.first_play),
                   rollout_first_temperature=getattr(args, "rollout_first_temperature",
                                                     MCTSConfig.rollout_first_temperature),
                   root_rollouts=getattr(args, "root_rollouts", MCTSConfig.root_rollouts))
    off = {sw: False for sw in ABLATION_SWITCHES if getattr(args, f"no_{sw}", False)}
    train = replace(TrainConfig(), batch_size=getattr(args, "batch_size", TrainConfig.batch_size),
                    lr=getattr(args, "lr", TrainConfig.lr),
                    warmup_steps=getattr(args, "warmup_steps", TrainConfig.warmup_steps),
                    demo_min_rank=getattr(args, "demo_min_rank", TrainConfig.demo_min_rank),
                    basis_probability=getattr(args, "basis_probability", TrainConfig.basis_probability), **off)
    seed = int(getattr(args, "seed", 0) or 0)
    run_dir = getattr(args, "run_dir", "") or f"runs/rl-{'x'.join(map(str, shape))}-s{seed}"
    return RunConfig(game=game, net=net, mcts=mcts, train=train, seed=seed,
                     budget_s=parse_budget(getattr(args, "budget", None)),
                     workers=int(getattr(args, "workers", 1) if getattr(args, "workers", None) is not None else 1),
                     ray=bool(getattr(args, "ray", False)), ray_address=getattr(args, "ray_address", ""),
                     target_rank=int(getattr(args, "target_rank", 0) or 0), run_dir=run_dir,
                     reward=getattr(args, "reward", "rank") or "rank",
                     reward_lambda=getattr(args, "reward_lambda", 1.0))


def run(args: argparse.Namespace) -> int:
    """Search; write the best exactly verified factorizations (with provenance) to ``args.out``."""
    from compiler.algebra.formats import append
    from search.rl.actors import run as run_rl
    cfg = config_from_args(args)
    t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res = run_rl(cfg, resume=getattr(args, "resume", False), progress=not getattr(args, "no_progress", False))
    summary = {"shape": cfg.game.shape, "field": cfg.game.field, "seed": cfg.seed, "reward": cfg.reward,
               "best_rank": res.best_rank, "games": res.games, "solved_games": res.solved_games,
               "train_steps": res.train_steps, "wall_s": round(res.seconds, 1), "first_found_s": res.first_found_s,
               "workers": cfg.workers, "ray": cfg.ray, "started": t0}
    print(json.dumps(summary))
    out = getattr(args, "out", None)
    if res.best and out:
        fs = []
        for i, f in enumerate(res.best[:16]):
            f.require_valid()
            n, m, p = cfg.game.shape
            prov = f.provenance
            notes = (f"{prov.notes} wall_time_s={res.first_found_s.get(str(f.rank))} run_wall_s={res.seconds:.1f} "
                     f"games={res.games} workers={cfg.workers} ray={cfg.ray} started={t0}").strip()
            fs.append(f.replace(name=f"{n}x{m}x{p}-rl-r{f.rank}-s{cfg.seed}-{i}",
                                provenance=replace(prov, notes=notes)))
        path, k = append(out, fs)  # keeps what the file already holds
        print(f"wrote {k} new verified factorization(s) of rank {res.best_rank} to {path}")
    elif out:
        print("no factorization found within the budget; nothing written")
    return 0 if res.best else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m search.rl.cli``) with the common options of ``search.run``."""
    ap = argparse.ArgumentParser(description="fastmm RL agent (AlphaTensor-style)")
    ap.add_argument("--shape", default="2,2,2")
    ap.add_argument("--method", default="rl")
    ap.add_argument("--field", default="Z")
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--reward", default="rank")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ray", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-rank", type=int, default=0)
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
