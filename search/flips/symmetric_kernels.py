"""The symmetric walk's compiled entry point (``search.flips.symmetric``): ``sym_walk``.

Its moves (orbit flips ``_sym_flip``, the plus transition on two orbits ``_sym_plus``, settling
orbit and fixed terms ``_sym_settle``) live in ``search.flips.kernel`` beside the plain walk's,
because the one walk loop there (``kernel._walk_loop``) runs both walks; σ, the images of a row
and orbit removal are in ``search.flips.orbits``."""

from __future__ import annotations

from numba import njit

from search.flips import kernel as K
from search.flips.orbits import transpose_table  # noqa: F401  (re-exported for search.flips.symmetric)
from search.flips.valueindex import index_rebuild, new_index


@njit(cache=True)
def sym_walk(P, N, R, FP, FN, nfix, mod2, stop_rank, max_flips, plateau, max_rank, rng, out, table, collapse=True):
    """``kernel.walk`` on the orbit part (R = 3·orbits rows); ``nfix[0]`` fixed terms in FP/FN.

    ``stop_rank`` and ``max_rank`` count the whole scheme (orbit rows + fixed terms). With
    ``collapse`` False the Z2 reduction of a σ-fixed orbit to one fixed term is not taken (it
    changes the rank mod 3: a walk aiming at a rank of the start's residue would leave it). Flips are
    drawn from an index of the rows' slot-0 factors, kept up to date row by row after a flip
    and rebuilt after a reduction or a plus transition (rare next to flips).
    """
    ix, ik = new_index(P.shape[0])
    index_rebuild(ix, ik, P, N, R, mod2)
    # orbit=True: the one index stands in for the plain walk's three
    R, nf = K._walk_loop(P, N, R, nfix[0], mod2, True, stop_rank, max_flips, plateau, max_rank, rng, out,
                         ix, ik, ix, ik, ix, ik, table, FP, FN, collapse)
    nfix[0] = nf
    return R
