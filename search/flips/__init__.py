"""Flip-graph local search: compiled random walks over Z2 and ternary schemes.

- ``kernel``: the numba inner loop (flips, reductions, plus transitions) on bitmask terms.
- ``encoding``: ``Factorization`` <-> bitmask terms.
- ``walker``: one walker with pools and restarts (``walk_search``, ``WalkConfig``).
- ``pools``: rank by rank, a pool of distinct schemes per level (``pool_search``; ``--levels``).
- ``parallel``: many walkers in processes (or Ray actors with ``--ray``).
- ``objective``: rank-preserving walks that optimise a reward plugin (e.g. additions after CSE).
- ``sides``: the addition-aware plateau walk on the compiler's CSE counted per side (``sides_walk``;
  the default ``--objective`` walk over Z).
- ``symmetric``: the Z3-invariant flip graph of <n,n,n> (orbit by orbit; Moosbauer & Poole 2025).
"""

from search.flips.encoding import decode, encode
from search.flips.walker import WalkConfig, WalkResult, walk_search

__all__ = ["WalkConfig", "WalkResult", "decode", "encode", "walk_search"]
