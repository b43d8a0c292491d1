"""Sampled MCTS on a toy tensor, with a scripted evaluator standing in for the network's samples."""

from __future__ import annotations

import numpy as np

from search.rl.config import GameConfig, MCTSConfig
from search.rl.game import TensorGame, can_finish, canonicalize, outer, rank_upper_bound, split
from search.rl.mcts import MCTS

CFG = GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1), max_steps=3)
DIMS = CFG.dims
A = canonicalize(np.array([1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1]), DIMS)
B = canonicalize(np.array([0, 1, 1, 0, 1, -1, 0, 0, 0, 0, 1, 1]), DIMS)
A_FLIPPED = np.concatenate([-A[:4], -A[4:8], A[8:]])  # (−u, −v, w): the same rank-one term
TOY = outer(*split(A, DIMS)) + outer(*split(B, DIMS))  # a rank-2 toy target


def scripted(seed: int = 0, distractors: int = 6):
    """Samples: the two true terms once each among random distractors; the value is −(the slice
    rank bound of the residual), a consistent estimate of the return (0 when solved)."""
    rng = np.random.default_rng(seed)

    def evaluate(game: TensorGame, k: int):
        junk = rng.choice([-1, 0, 1], size=(distractors, 12))
        value = -float(rank_upper_bound(game.residual))
        return np.concatenate([junk, A[None], B[None], A_FLIPPED[None]]), value
    return evaluate


def test_mcts_solves_the_toy_tensor_in_two_moves():
    mcts = MCTS(scripted(), MCTSConfig(simulations=64, samples=8))
    game = TensorGame(CFG, target=TOY)
    root = mcts.node(game)
    while not game.done:
        mcts.search(root)
        i = mcts.choose(root, np.random.default_rng(0), temperature=False)
        game.step(root.actions[i])
        root = mcts.advance(root, i)
    assert game.solved and game.steps == 2 and game.total_reward == -2.0


def test_canonical_duplicates_merge_into_one_sampled_action_with_their_mass():
    mcts = MCTS(scripted(distractors=0), MCTSConfig(simulations=1, samples=3))
    root = mcts.node(TensorGame(CFG, target=TOY))
    mcts.search(root, 1)
    # A and (−u, −v, w) are one action after canonicalisation, sampled twice: prior 2/3.
    keys = [a.tobytes() for a in root.actions]
    assert len(root.actions) == 2
    assert root.prior[keys.index(A.tobytes())] == 2 / 3


def test_improved_policy_prefers_the_true_terms():
    mcts = MCTS(scripted(1), MCTSConfig(simulations=96, samples=9))
    root = mcts.search(mcts.node(TensorGame(CFG, target=TOY)))
    acts, p = mcts.policy(root)
    assert abs(p.sum() - 1) < 1e-12
    true = {A.tobytes(), B.tobytes()}
    mass = sum(pi for a, pi in zip(acts, p) if a.tobytes() in true)
    assert mass > 0.5, mass


def test_transposition_table_shares_nodes_across_action_orders():
    mcts = MCTS(scripted(), MCTSConfig(simulations=64, samples=8))
    g1, g2 = TensorGame(CFG, target=TOY), TensorGame(CFG, target=TOY)
    g1.step(A), g1.step(B)
    g2.step(B), g2.step(A)
    assert mcts.node(g1) is mcts.node(g2)
    root = mcts.search(mcts.node(TensorGame(CFG, target=TOY)))
    kids = [c for c in root.children if c is not None]
    solved = {id(gc) for c in kids for gc in c.children if gc is not None and gc.game.solved}
    assert len(solved) == 1  # A-then-B and B-then-A meet in one table entry


def test_subtree_reuse_keeps_statistics():
    mcts = MCTS(scripted(), MCTSConfig(simulations=64, samples=8, reuse_tree=True))
    root = mcts.search(mcts.node(TensorGame(CFG, target=TOY)))
    i = mcts.choose(root, np.random.default_rng(0), temperature=False)
    child = mcts.advance(root, i)
    assert child.expanded and child.visits() > 0
    fresh = MCTS(scripted(), MCTSConfig(simulations=64, samples=8, reuse_tree=False))
    r2 = fresh.search(fresh.node(TensorGame(CFG, target=TOY)))
    assert fresh.advance(r2, fresh.choose(r2, np.random.default_rng(0), False)).visits() == 0


def test_terminal_penalty_backs_up_through_the_tree():
    """With only wrong terms on offer, every line ends at the step limit with the bound charged."""
    def junk_only(game, k):
        return np.array([[1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]]), 0.0
    # Without pruning (which would drop the junk term: it leaves more rank than steps).
    mcts = MCTS(junk_only, MCTSConfig(simulations=8, samples=1, prune=False))
    root = mcts.search(mcts.node(TensorGame(CFG, target=TOY)))
    q = root.W[0] / root.N[0]
    assert q < -3.0  # three steps (−3) plus a positive rank bound of the unsolved residual


def test_root_dirichlet_noise_explores_without_touching_the_stored_prior():
    cfg = MCTSConfig(simulations=16, samples=8, root_noise=0.25, dirichlet_alpha=0.3)
    mcts = MCTS(scripted(), cfg, rng=np.random.default_rng(0))
    root = mcts.node(TensorGame(CFG, target=TOY))
    mcts.expand(root)
    clean = root.prior.copy()  # the sample frequencies
    mcts.search(root)
    assert np.isclose(mcts._root_prior.sum(), 1.0)
    assert not np.allclose(mcts._root_prior, root.prior)  # the noise changed the prior used at the root
    assert np.array_equal(root.prior, clean)  # ... but not the stored one (it is reused as a subtree)
    quiet = MCTS(scripted(), cfg)  # no generator: no noise
    r2 = quiet.search(quiet.node(TensorGame(CFG, target=TOY)))
    assert quiet._root_prior is r2.prior


def _policy_from(choices, rng):
    """A batch policy that picks, for each state, one of ``choices`` at random (a stand-in network)."""
    def act(residuals, histories, step, k=1):
        assert len(residuals) == len(histories)
        return np.stack([choices[int(rng.integers(len(choices)))] for _ in range(len(residuals) * k)])
    return act


def test_batched_rollouts_return_the_best_exact_return_and_keep_the_solution():
    # Half the samples are A or B, half junk: among 64 rollouts of two moves some play {A, B}.
    junk = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    cfg = MCTSConfig(rollout_batch=64)
    mcts = MCTS(None, cfg, act_batch=_policy_from([A, B, junk, junk], np.random.default_rng(0)))
    game = TensorGame(CFG, target=TOY)
    assert mcts.rollout(game) == -2.0  # the best of the batch solved in two moves
    assert mcts.solution is not None and len(mcts.solution) == 2
    g = TensorGame(CFG, target=TOY)
    for a in mcts.solution:
        g.step(a)
    assert g.solved  # the kept actions really solve the game


def test_batched_rollouts_charge_the_terminal_penalty_when_none_finishes():
    junk = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    mcts = MCTS(None, MCTSConfig(rollout_batch=8, prune=False),
                act_batch=_policy_from([junk], np.random.default_rng(0)))
    game = TensorGame(CFG, target=TOY)
    g = game.clone()
    while not g.done:
        g.step(junk)
    # Every rollout plays junk three times: the return is the game's own (−3 − rank bound).
    assert mcts.rollout(game) == g.total_reward and mcts.solution is None


def test_batched_rollouts_without_a_batch_policy_use_the_evaluator_and_agree_with_one_rollout():
    def only_a_then_b(game, k):
        return (A if game.steps == 0 else B)[None], 0.0
    batched = MCTS(only_a_then_b, MCTSConfig(rollout_batch=4))
    single = MCTS(only_a_then_b, MCTSConfig(rollout_batch=1))
    game = TensorGame(CFG, target=TOY)
    assert batched.rollout(game) == single.rollout(game) == -2.0
    assert [a.tolist() for a in batched.solution] == [a.tolist() for a in single.solution]


def test_batched_rollouts_reduce_mod_2():
    cfg2 = GameConfig(shape=(2, 2, 2), field="Z2", max_steps=2)
    a = np.array([1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1])
    b = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    # a⊗a⊗a and b⊗b⊗b share the entry [0,0,0]: their sum mod 2 has a 0 there, so playing a then b
    # leaves −2 there over Z, which is 0 mod 2: solved only if the rollout reduces like the game.
    target = (outer(*split(a, DIMS)) + outer(*split(b, DIMS))) % 2
    plays = iter([a, b])
    mcts = MCTS(None, MCTSConfig(rollout_batch=1 + 1),
                act_batch=lambda S, H, step, k=1: np.stack([[a, b][step]] * (len(S) * k)))
    game = TensorGame(cfg2, target=target)
    assert mcts.rollout(game) == -2.0 and len(mcts.solution) == 2
    g = TensorGame(cfg2, target=target)
    for x in plays:
        g.step(x)
    assert g.solved


# -- pruning and the exact endgame --------------------------------------------------------------
def test_expansion_keeps_only_actions_that_can_still_finish():
    mcts = MCTS(scripted(distractors=12), MCTSConfig(simulations=1, samples=15))
    root = mcts.node(TensorGame(CFG, target=TOY))
    mcts.expand(root)
    keys = {a.tobytes() for a in root.actions}
    assert {A.tobytes(), B.tobytes()} <= keys
    for a in root.actions:  # everything kept leaves a residual of flattening rank ≤ the 2 steps left
        g = TensorGame(CFG, target=TOY)
        g.step(a)
        assert can_finish(g.residual, 2)
    assert np.isclose(root.prior.sum(), 1.0)
    unpruned = MCTS(scripted(distractors=12), MCTSConfig(simulations=1, samples=15, prune=False))
    r2 = unpruned.node(TensorGame(CFG, target=TOY))
    unpruned.expand(r2)
    assert len(r2.actions) > len(root.actions)  # the junk terms were there to prune


def test_a_rank_one_residual_is_finished_exactly_without_the_network():
    def never(game, k):
        raise AssertionError("the endgame must not ask the network")
    mcts = MCTS(never, MCTSConfig(simulations=4))
    g = TensorGame(CFG, target=TOY)
    g.step(A)
    node = mcts.node(g)
    assert mcts.expand(node) == -1.0
    assert len(node.actions) == 1 and np.array_equal(node.actions[0], B)


def test_a_state_with_no_admissible_sample_is_a_dead_leaf_with_an_upper_bound_value():
    def junk_only(game, k):
        return np.array([[1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]]), 0.0
    mcts = MCTS(junk_only, MCTSConfig(simulations=8, samples=1))
    root = mcts.search(mcts.node(TensorGame(CFG, target=TOY)))
    assert root.expanded and not root.actions
    # Three steps left, the residual (rank 2) cannot be finished with the junk: value ≤ −3 − 1.
    assert root.value <= -4.0


def test_pruned_rollouts_play_admissible_candidates_and_finish_more_often():
    junk = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    game = TensorGame(CFG, target=TOY)
    solved = {}
    for prune in (False, True):
        mcts = MCTS(None, MCTSConfig(rollout_batch=32, prune=prune, rollout_candidates=8),
                    act_batch=_policy_from([A, junk, junk, junk], np.random.default_rng(0)))
        mcts.rollout(game)
        solved[prune] = mcts.rollout_counts[0]
        if prune:
            # A first (the only admissible move), then B by the exact endgame, in every rollout that
            # sampled A among its 8 candidates.
            assert mcts.solution is not None and len(mcts.solution) == 2
    assert solved[True] > solved[False]


def test_ordered_expansion_drops_larger_terms_after_a_smaller_one():
    ordered = GameConfig(shape=(2, 2, 2), coefficients=(-1, 0, 1), max_steps=3, ordered=True)
    mcts = MCTS(scripted(distractors=0), MCTSConfig(simulations=1, samples=3))
    root = mcts.node(TensorGame(ordered, target=TOY))
    mcts.expand(root)
    assert {a.tobytes() for a in root.actions} == {A.tobytes(), B.tobytes()}  # both of size 8: in order
    g = TensorGame(ordered, target=TOY)
    g.step(np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]))  # a size-1 term first: only size-1 terms may follow
    node = mcts.node(g)
    mcts.expand(node)
    assert not node.actions  # A and B are out of order now: a dead leaf


def test_root_rollouts_and_a_hot_first_move_reach_a_solution_before_any_simulation():
    """The root is evaluated by rollouts when first expanded; each rollout's first move is sampled at
    the first-move temperature (passed to the batch policy), later moves at the policy's own."""
    temps = []

    def act(S, H, step, k=1, temperature=None):
        temps.append((step, temperature))
        return np.stack([(A if step == 0 else B)] * (len(S) * k))

    cfg = MCTSConfig(simulations=5, rollouts=True, rollout_batch=4, root_rollouts=8, rollout_first_temperature=7.0)
    mcts = MCTS(scripted(), cfg, act_batch=act)
    root = mcts.search(mcts.node(TensorGame(CFG, target=TOY)))
    assert mcts.solution is not None and root.visits() == 0  # solved by the root's rollouts
    assert (0, 7.0) in temps and all(t is None for s, t in temps if s > 0)
