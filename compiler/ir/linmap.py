"""Linear-map programs: ``y = T·x`` over blocks, out of place or in place (the alternative-basis transforms).

An alternative-basis algorithm (``compiler.algebra.altbasis``) applies block-local linear maps
(Φ to the a-blocks, Ψ to the b-blocks, Υ⁻¹ to the core's result) at every level of the block
hierarchy. Each is a ``LinearMap``: a flat list of ``LinearStep``s over block slots, data that the
torch emitter renders (``compiler.codegen.emit_altbasis``) and translation validation runs
(``compiler.codegen.validate.check_linear_ops``):

- ``out_of_place(T)``: one step per row, ``y[i] = Σ_j T[i,j]·x[j]`` (x is read only). The first
  level reads the caller's operand, which must not be modified, and writes the one workspace.
- ``in_place(T)``: steps ``y[i] = s·y[i] + Σ_j c_j·y[j]`` (s = ±1, integer c_j when T is
  unimodular) that leave ``y = T·y₀`` in the same slots: the deeper levels, so that every level
  after the first runs inside that workspace and the transform allocates nothing else.

How ``in_place`` finds its steps: slot i holds row S[i] of a state matrix (start S = I). A slot
is *finished* by one step when its target row T[i] = λ·S has λ_i = ±1 (then ``y[i] = λ_i·y[i] +
Σ_{j≠i} λ_j·y[j]``, and S stays invertible); the cheapest such slot (fewest nonzero λ) goes
first. When no unfinished slot has λ_i = ±1 (a permutation, say), one elementary step
``y[i] += c·y[j]`` between unfinished slots makes one (or runs a step of Euclid's algorithm on
a row of λ, for larger entries). Every step keeps S unimodular for a unimodular T, so all
coefficients stay integers and the transform stays bit-exact on integer data. A map that is not
unimodular (a rational alternative basis) may finish a slot with any nonzero λ_i.

Public API: ``LinearStep``, ``LinearMap``, ``out_of_place(T)``, ``in_place(T)``, ``apply(lm, x)``
(exact, for tests), ``LinearMapError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from compiler.algebra.constructions import exact_inverse
from compiler.ir.program import exact


class LinearMapError(ValueError):
    """No in-place program was found (or a step list does not compute its map)."""


@dataclass(frozen=True)
class LinearStep:
    """``y[dst] = scale·(y[dst] if in place else 0) + Σ coef·src[j]`` (src: x out of place, y in place)."""

    dst: int
    terms: tuple[tuple[int, int | Fraction], ...]
    scale: int | Fraction = 0  # in place: the coefficient of y[dst]'s old value (±1 when unimodular); else 0


@dataclass(frozen=True, eq=False)
class LinearMap:
    matrix: np.ndarray      # the exact k×k map T
    steps: tuple[LinearStep, ...]
    inplace: bool

    @property
    def additions(self) -> int:
        """Block additions: each step adds (terms − 1) out of place, (terms) in place (the old value is one)."""
        return sum(len(s.terms) - (0 if self.inplace else 1) for s in self.steps)

    @property
    def passes(self) -> int:
        """Block writes: the steps that are not an identity (an out-of-place copy counts: it writes)."""
        return len(self.steps)


def _rows(T) -> list[list]:
    return [[exact(c) for c in row] for row in np.asarray(T, dtype=object).tolist()]


def out_of_place(T) -> LinearMap:
    """``y[i] = Σ_j T[i,j]·x[j]`` for every row (a row of zeros is refused: T must be invertible)."""
    rows = _rows(T)
    steps = []
    for i, row in enumerate(rows):
        terms = tuple((j, c) for j, c in enumerate(row) if c != 0)
        if not terms:
            raise LinearMapError(f"row {i} of the map is zero: not invertible")
        # a coefficient-1 term first: ``torch.add(x, y, alpha=c, out=dst)`` needs one
        terms = tuple(sorted(terms, key=lambda t: t[1] != 1))
        steps.append(LinearStep(i, terms))
    return LinearMap(np.asarray(T, dtype=object), tuple(steps), False)


def _matmul(a: list[list], b: list[list]) -> list[list]:
    return [[exact(sum((x * y for x, y in zip(r, col)), 0)) for col in zip(*b)] for r in a]


def in_place(T, max_steps: int | None = None) -> LinearMap:
    """Steps that transform the slots in place into ``T·y`` (module docstring); ``T`` invertible."""
    target = _rows(T)
    k = len(target)
    inv = exact_inverse(T)  # raises on a singular map
    unimodular = all(Fraction(c).denominator == 1 for row in target for c in row) and inv.dtype != object
    S = [[int(i == j) for j in range(k)] for i in range(k)]
    done: set[int] = set()
    steps: list[LinearStep] = []
    limit = max_steps or 40 * k * k

    def apply_step(st: LinearStep) -> None:
        new = [exact(st.scale * x) for x in S[st.dst]]
        for j, c in st.terms:
            new = [exact(x + c * y) for x, y in zip(new, S[j])]
        S[st.dst] = new
        steps.append(st)

    while len(done) < k:
        if len(steps) > limit:
            raise LinearMapError(f"no in-place program within {limit} steps")
        lam = _matmul(target, [list(r) for r in np.asarray(exact_inverse(np.array(S, dtype=object)),
                                                          dtype=object).tolist()])
        open_ = [i for i in range(k) if i not in done]
        best = None
        for i in open_:
            if lam[i][i] in (1, -1) and all(Fraction(c).denominator == 1 for c in lam[i]):
                cost = sum(1 for c in lam[i] if c != 0)
                if best is None or cost < best[0]:
                    best = (cost, i)
        if best is None and not unimodular:  # rational maps: any nonzero λ_i (S stays invertible)
            best = min(((sum(1 for c in lam[i] if c != 0), i) for i in open_ if lam[i][i] != 0), default=None)
        if best is not None:
            i = best[1]
            if all(c == (1 if j == i else 0) for j, c in enumerate(lam[i])):
                done.add(i)  # already in place: no step
                continue
            terms = tuple((j, c) for j, c in enumerate(lam[i]) if j != i and c != 0)
            apply_step(LinearStep(i, terms, lam[i][i]))
            done.add(i)
            continue
        # no slot finishes in one step: an elementary step y[i] += c·y[j] (i, j open) changes column j
        # of λ to λ[:, j] − c·λ[:, i]; take one that makes a diagonal entry ±1, else a Euclid step
        found = None
        for j in open_:
            for i in open_:
                if i == j or lam[j][i] == 0:
                    continue
                for c in (1, -1, 2, -2, 3, -3):
                    if lam[j][j] - c * lam[j][i] in (1, -1):
                        found = (i, j, c)
                        break
                if found:
                    break
            if found:
                break
        if found is None:  # Euclid on the row of the open slot with the smallest nonzero off-diagonal entry
            j, i = min(((j, i) for j in open_ for i in open_ if i != j and lam[j][i] != 0),
                       key=lambda t: abs(lam[t[0]][t[1]]), default=(None, None))
            if j is None:
                raise LinearMapError("the map's open block is diagonal without unit entries: not unimodular")
            if lam[j][j] == 0 or abs(lam[j][j]) >= abs(lam[j][i]):
                found = (i, j, -1 if lam[j][j] == 0 else int(Fraction(lam[j][j], lam[j][i]) // 1))
            else:  # reduce λ[j][i] by λ[j][j]: a step on slot j changes column i
                found = (j, i, int(Fraction(lam[j][i], lam[j][j]) // 1))
        i, j, c = found
        if c == 0:
            raise LinearMapError("the in-place search made no progress")
        apply_step(LinearStep(i, ((j, c),), 1))
    lm = LinearMap(np.asarray(T, dtype=object), tuple(steps), True)
    got = apply(lm, np.eye(k, dtype=object).astype(object))
    if not (got == np.asarray(T, dtype=object)).all():
        raise LinearMapError("internal: the in-place steps do not compute the map")
    return lm


def apply(lm: LinearMap, x: np.ndarray) -> np.ndarray:
    """Run the steps on the rows of ``x`` (k rows; exact object arithmetic): ``T·x`` when correct."""
    x = np.asarray(x, dtype=object)
    y = x.copy() if lm.inplace else np.zeros_like(x)
    src = y if lm.inplace else x
    for st in lm.steps:
        new = st.scale * y[st.dst] if lm.inplace else 0 * y[st.dst]
        for j, c in st.terms:
            new = new + c * src[j]
        y[st.dst] = new
    return y
