"""Typed configurations of the agent: the game, the network, the search and the training.

Every ablation switch of AlphaTensor's table lives in ``TrainConfig`` (see ``search.ablate``).
Defaults are small enough to train on a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class GameConfig:
    shape: tuple[int, int, int] = (2, 2, 2)
    field: str = "Z"  # "Z": integer arithmetic; "Z2": coefficients {0,1}, updates modulo 2
    coefficients: tuple[int, ...] = (-2, -1, 0, 1, 2)
    max_steps: int = 0  # 0: n·m·p (the naive rank), so any finished game is at least as good
    history: int = 2  # previous actions shown to the network
    # Play the terms in non-increasing size (size = nnz(u)·nnz(v)·nnz(w), the entries of u⊗v⊗w).
    # Every factorization is still reachable (sort its terms), so no rank is lost; what goes is the
    # freedom to play a small term early. In particular a naive term a_ij·b_jk·c_ik (size 1) can only
    # be followed by terms of size 1, which ends at once every line that starts with one unless the
    # rest is naive too. An out-of-order move is refused by the game.
    ordered: bool = False

    def __post_init__(self) -> None:
        if self.field not in ("Z", "Z2"):
            raise ValueError(f"field must be Z or Z2, got {self.field!r}")
        if self.field == "Z2" and set(self.coefficients) != {0, 1}:
            object.__setattr__(self, "coefficients", (0, 1))
        if 0 not in self.coefficients:
            raise ValueError("the coefficient set must contain 0")
        object.__setattr__(self, "shape", tuple(int(x) for x in self.shape))

    @property
    def dims(self) -> tuple[int, int, int]:
        n, m, p = self.shape
        return n * m, m * p, n * p

    @property
    def steps(self) -> int:
        n, m, p = self.shape
        return self.max_steps or n * m * p


@dataclass(frozen=True)
class NetConfig:
    d_model: int = 64
    heads: int = 4
    torso_layers: int = 2  # attentive-mode blocks (each attends over the three grid pairs)
    policy_layers: int = 2
    quantiles: int = 8
    risk_quantile: float = 0.75  # risk-seeking readout: mean of the quantiles above this level
    dropout: float = 0.0
    # Coefficients per action token (AlphaTensor splits actions into chunks); 0: the largest chunk
    # whose vocabulary |F|^chunk stays ≤ 128. Sampling cost grows with the token count: <3,3,3>
    # with one token per coefficient took 0.44 s per 16-sample expansion, 9 tokens of 3 much less.
    chunk: int = 0


@dataclass(frozen=True)
class MCTSConfig:
    simulations: int = 32
    samples: int = 16  # K: actions sampled from the policy at each expanded node
    c_puct: float = 1.25
    reuse_tree: bool = True
    temperature_moves: int = 3  # sample moves ∝ visits for the first few, then take the most visited
    sample_temperature: float = 1.0
    # Leaf evaluation by a policy rollout mixed with the value head (AlphaGo: weight 0.5). A rollout
    # that finishes the game is a solution found by the search; with stop_on_solution the game plays it.
    rollouts: bool = False
    rollout_weight: float = 0.5
    # Rollouts per leaf, played as one batch (one network call per move for all of them); the leaf's
    # rollout value is their best return. 1: a single rollout (AlphaGo).
    rollout_batch: int = 1
    rollout_temperature: float = 0.0  # of the rollouts' policy samples (0: sample_temperature)
    # Temperature of each rollout's first move (0: rollout_temperature). A high one spreads a batch of
    # rollouts over many distinct first moves: the exploration the root needs when the policy puts
    # almost no mass on the moves that make the rest easy (see search/rl/README.md).
    rollout_first_temperature: float = 0.0
    # Rollouts from a freshly expanded search root (AlphaGo evaluates every expanded node by rollouts;
    # the root was the one exception), played in batches of 256. 0: none.
    root_rollouts: int = 0
    stop_on_solution: bool = True
    # Exact, admissible pruning (game.can_finish): a sampled action whose residual has a flattening
    # rank above the steps left after it cannot lead to a finished game and is dropped; a residual
    # that is one rank-one term in the coefficient set is finished at once (the exact endgame).
    prune: bool = True
    # Policy samples per rollout state and move where pruning can reject some (the first admissible
    # one is played): rollouts then sample from the policy restricted to admissible actions.
    rollout_candidates: int = 8
    # Q of an unvisited sampled action: "value" (the node's value estimate, AlphaZero-like) or "max"
    # (optimistic first-play urgency: the best normalised Q, so every sampled action is tried once,
    # in prior order, before any is tried twice). When almost every leaf fails alike, "value" spends
    # the visits on the few most sampled actions.
    first_play: str = "value"
    root_noise: float = 0.25  # fraction of Dirichlet noise in the root's prior (AlphaZero: 0.25)
    dirichlet_alpha: float = 0.3


@dataclass(frozen=True)
class TrainConfig:
    # AlphaTensor's ablation switches (all on = the full agent).
    synthetic: bool = True  # supervised loss on synthetic demonstrations
    self_play: bool = True  # play games with MCTS and learn from them
    change_of_basis: bool = True  # play games in a random unimodular basis
    signed_permutations: bool = True  # augment training samples by signed permutations
    retrain_best: bool = True  # replay the best games found on a fraction of the batches
    canonicalize: bool = True  # canonical signs of (u, v, w)
    reorder: bool = True  # any action of a finished game may be played last (order augmentation)
    # Sizes and rates.
    batch_size: int = 64
    lr: float = 1e-3
    synthetic_fraction: float = 0.5  # of each batch, when both sources are on
    best_fraction: float = 0.1
    buffer_size: int = 20000
    basis_probability: float = 0.5  # games in a random basis (when change_of_basis)
    demo_max_rank: int = 0  # 0: the game's step limit
    demo_min_rank: int = 1
    demo_zero_probability: float = 0.55  # of a coefficient in a synthetic factor
    demo_all_targets: bool = True  # a demo position's policy target: all remaining terms (False: the next one)
    train_steps_per_game: int = 8
    warmup_steps: int = 300  # supervised steps on demonstrations before self-play starts
    checkpoint_every: int = 200


@dataclass(frozen=True)
class RunConfig:
    game: GameConfig = field(default_factory=GameConfig)
    net: NetConfig = field(default_factory=NetConfig)
    mcts: MCTSConfig = field(default_factory=MCTSConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    budget_s: float = 600.0
    workers: int = 1  # self-play actor processes (0: play in the learner's process)
    ray: bool = False
    ray_address: str = ""
    target_rank: int = 0  # stop when a factorization of at most this rank is found (0: never)
    max_games: int = 0  # stop after this many games (0: no limit)
    run_dir: str = ""
    reward: str = "rank"
    reward_lambda: float = 0.0  # r' = r + λ·b for a non-rank reward b

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        g = d.pop("game", {})
        g = {**g, "shape": tuple(g.get("shape", (2, 2, 2))), "coefficients": tuple(g.get("coefficients", (-2, -1, 0, 1, 2)))}
        return cls(game=GameConfig(**g), net=NetConfig(**d.pop("net", {})), mcts=MCTSConfig(**d.pop("mcts", {})),
                   train=TrainConfig(**d.pop("train", {})), **d)

    def with_train(self, **kw) -> "RunConfig":
        return replace(self, train=replace(self.train, **kw))
