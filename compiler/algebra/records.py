"""Best-known ranks per shape: a fact table with sources (algebra layer).

``BEST_KNOWN[(n, m, p)]`` gives the lowest published rank over the rationals (field ``Q``) and,
where lower, modulo 2 (``Z2``), each with its source. Shapes are stored with n ≤ m ≤ p sorted;
the rank of <n,m,p> is invariant under permuting (n, m, p) (cyclic symmetry and transposition),
so ``best_known(shape)`` sorts first. Records as published up to 2025; newer results may exist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    rank: int
    field: str
    source: str


_AT = "Fawzi et al., Nature 610 (2022) (AlphaTensor)"
_KM = "Kauers & Moosbauer, flip graphs (2022-2023)"
_AE = "Arai, Ichikawa & Hukushima, adaptive flip graph (2024)"
_MP = "Moosbauer & Poole, flip graphs with symmetry (2025)"

BEST_KNOWN: dict[tuple[int, int, int], tuple[Record, ...]] = {
    (1, 1, 1): (Record(1, "Q", "trivial"),),
    (2, 2, 2): (Record(7, "Q", "Strassen (1969); optimal: Winograd (1971)"),),
    (2, 2, 3): (Record(11, "Q", "Strassen <2,2,2;7> ⊕ <2,2,1;4>; optimal (Alekseyev 1985)"),),
    (2, 2, 4): (Record(14, "Q", "two Strassen blocks"),),
    (2, 2, 5): (Record(18, "Q", "Strassen blocks ⊕ <2,2,1;4>"),),
    (2, 3, 3): (Record(15, "Q", "Hopcroft & Kerr (1971)"),),
    (2, 3, 4): (Record(20, "Q", "Hopcroft & Kerr (1971)"),),
    (2, 3, 5): (Record(25, "Q", "Hopcroft & Kerr (1971)"),),
    (2, 4, 4): (Record(26, "Q", "Hopcroft & Kerr (1971)"),),
    (2, 4, 5): (Record(33, "Q", "Hopcroft & Kerr (1971); matched by AlphaTensor (2022)"),),
    (2, 5, 5): (Record(40, "Q", "Hopcroft & Kerr (1971)"),),
    (3, 3, 3): (Record(23, "Q", "Laderman (1976)"),),
    (3, 3, 4): (Record(29, "Q", "Smirnov (2013)"),),
    (3, 3, 5): (Record(36, "Q", "Smirnov (2013)"),),
    (3, 4, 4): (Record(38, "Q", "Smirnov (2013)"),),
    (3, 4, 5): (Record(47, "Q", _AT),),
    (3, 5, 5): (Record(58, "Q", "Sedoglavic & Smirnov (2021)"),),
    (4, 4, 4): (Record(48, "Q", "Dumas, Pernet & Sedoglavic (2025), after AlphaEvolve's complex rank 48"),
                Record(47, "Z2", _AT)),
    (4, 4, 5): (Record(61, "Q", "flip-graph searches after AlphaTensor's 63 (Kauers & Moosbauer; Arai et al.)"),),
    (4, 5, 5): (Record(76, "Q", _AT),),
    (5, 5, 5): (Record(93, "Q", _MP), Record(93, "Z2", _MP)),
    (6, 6, 6): (Record(153, "Q", _MP),),
}


def best_known(shape: tuple[int, int, int], field: str = "Q") -> Record | None:
    """The record for ``shape`` in ``field`` (a Q record also holds mod 2); None when unknown."""
    recs = BEST_KNOWN.get(tuple(sorted(shape)), ())
    cands = [r for r in recs if r.field == field or (field == "Z2" and r.field == "Q")]
    return min(cands, key=lambda r: r.rank) if cands else None
