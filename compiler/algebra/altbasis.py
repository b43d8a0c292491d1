"""Alternative-basis algorithms: a sparse core between basis transforms (algebra layer: numpy only).

Karstadt and Schwartz (SPAA 2017, JACM 2020) and Beniamini and Schwartz ("Faster matrix
multiplication via sparse decomposition", SPAA 2019) write a bilinear algorithm <U, V, W> as

    U = Φᵀ · Uc,   V = Ψᵀ · Vc,   W = Υ⁻¹ · Wc

with invertible Φ (nm×nm), Ψ (mp×mp), Υ (np×np). The algorithm then runs as: transform the
operands (ã = Φ·a, b̃ = Ψ·b, acting on the vectors of blocks), run the *core* <Uc, Vc, Wc>
recursively on the transformed blocks, and apply Υ⁻¹ to the result. Because the transforms
are block-local linear maps, L levels of them compose into Φ^{⊗L}, which is applied level by
level in O(N² L) additions, while the core saves additions at every level of the recursion.
Winograd's <2,2,2;7> has 15 additions; its best core has 12 (Karstadt–Schwartz), the
lowest possible for any 2×2 rank-7 algorithm in any basis.

How the transforms are found (``sparsify``): the rows of ``Uc = Φ⁻ᵀ·U`` are a basis of the row
space of U, and the core's encoding additions are nnz(Uc) minus its nonzero columns; so the
sparsest core for U is a minimum-weight basis of that row space. Bases of a vector space form
a matroid, so the greedy choice (lightest independent vector first) is optimal among the
candidate vectors: here every ±1 combination of up to ``support`` rows of U (the rows
themselves included, so the result is never worse than the standard basis). The same holds
for W: ``Wc = Υ·W`` and the decoding additions are nnz(Wc) minus its nonzero rows. Candidates
are ordered by weight, then preferring unimodular transforms (det ±1, so every transform and
its inverse is integral and the algorithm stays bit-exact on integers).

``AltBasis.verify()`` proves the decomposition exactly: the transforms are invertible, the
reconstructed U, V, W equal the algorithm's factors entry for entry, and that algorithm is a
valid factorization of the matmul tensor (Brent equations in exact arithmetic).

Public API: ``AltBasis``, ``sparsify(f, support=3)``, ``additions(f)``, ``load_altbasis(path)`` (``altbasis_entries``/``decode_altbasis``: one entry at a time),
``save_altbasis(path, items)``; ``python -m compiler.algebra.altbasis factors/*.npz --out
factors/altbasis.json`` regenerates the stored results (every integer algorithm of the repository's
own factor files whose core is sparser than its standard basis; AlphaTensor's are not stored).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from compiler.algebra.constructions import exact_inverse
from compiler.algebra.factors import Factorization, FactorizationError, Provenance, to_exact

ALTBASIS_FORMAT = "fastmm-altbasis"

# A prime below 2**31: independence is tested modulo it (with int64 products that cannot
# overflow). Independent mod p implies independent over Q, so a vector this test accepts is
# truly independent; the rare vector it rejects only makes the greedy choice less sparse.
_PRIME = 2_147_483_629


def _exact(a) -> np.ndarray:
    return np.asarray(to_exact(a), dtype=object)


def _mat(a, b) -> np.ndarray:
    return to_exact(np.asarray(a, dtype=object).dot(np.asarray(b, dtype=object)))


def _nnz(a: np.ndarray) -> int:
    return int(np.count_nonzero(np.asarray(a, dtype=object) != 0))


def _encode_additions(U: np.ndarray) -> int:
    """Additions to form every product's operand: Σ over columns of (nonzeros − 1)."""
    nz = np.asarray(U, dtype=object) != 0
    return int(sum(max(int(c) - 1, 0) for c in nz.sum(axis=0)))


def _decode_additions(W: np.ndarray) -> int:
    """Additions to form every output block from the products: Σ over rows of (nonzeros − 1)."""
    nz = np.asarray(W, dtype=object) != 0
    return int(sum(max(int(r) - 1, 0) for r in nz.sum(axis=1)))


def _map_additions(M: np.ndarray) -> int:
    """Additions of the block-local linear map y = M·x (one level): Σ over rows of (nonzeros − 1)."""
    return _decode_additions(M)


def additions(f: Factorization) -> tuple[int, int, int]:
    """(a-side, b-side, c-side) additions of one level of ``f`` without any common subexpressions."""
    return _encode_additions(f.U), _encode_additions(f.V), _decode_additions(f.W)


@dataclass(frozen=True)
class AltBasis:
    """``algorithm`` written as ``U = Φᵀ·Uc``, ``V = Ψᵀ·Vc``, ``W = Υ⁻¹·Wc`` (see module docstring)."""

    algorithm: Factorization
    phi: np.ndarray       # nm×nm, applied to the a-blocks: ã = Φ·a
    psi: np.ndarray       # mp×mp, applied to the b-blocks: b̃ = Ψ·b
    upsilon: np.ndarray   # np×np, the output basis: c = Υ⁻¹·c̃
    Uc: np.ndarray
    Vc: np.ndarray
    Wc: np.ndarray
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def name(self) -> str:
        return f"alt-{self.algorithm.name}"

    @property
    def upsilon_inv(self) -> np.ndarray:
        return exact_inverse(self.upsilon)

    @property
    def digest(self) -> str:
        """SHA-256 of the algorithm's digest and the exact transforms Φ, Ψ, Υ (the core follows from
        them): what a runtime plan names the basis by, so a changed stored basis is a different plan."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            h = hashlib.sha256(f"{self.algorithm.digest}|".encode())
            for T in (self.phi, self.psi, self.upsilon):
                h.update(f"|{T.shape}:{','.join(str(Fraction(x)) for x in np.asarray(T, dtype=object).flat)}".encode())
            cached = h.hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cached

    def verify(self) -> "AltBasis":
        """Raise ``FactorizationError`` unless the decomposition reproduces a valid algorithm exactly."""
        f = self.algorithm
        n, m, p = f.shape
        for name, T, k in (("Φ", self.phi, n * m), ("Ψ", self.psi, m * p), ("Υ", self.upsilon, n * p)):
            if T.shape != (k, k):
                raise FactorizationError(f"{self.name}: {name} must be {k}×{k}, got {T.shape}")
            exact_inverse(T)  # raises on a singular transform
        checks = (("U", f.U, _mat(np.asarray(self.phi, dtype=object).T, self.Uc)),
                  ("V", f.V, _mat(np.asarray(self.psi, dtype=object).T, self.Vc)),
                  ("W", f.W, _mat(self.upsilon_inv, self.Wc)))
        for name, want, got in checks:
            if want.shape != got.shape or not (np.asarray(want, dtype=object) == np.asarray(got, dtype=object)).all():
                raise FactorizationError(f"{self.name}: the transforms and core do not reproduce {name}")
        f.require_valid()
        return self

    def core_additions(self) -> tuple[int, int, int]:
        """(a, b, c) additions of one level of the core <Uc, Vc, Wc>, without CSE."""
        return _encode_additions(self.Uc), _encode_additions(self.Vc), _decode_additions(self.Wc)

    def transform_additions(self) -> tuple[int, int, int]:
        """Additions of one level of each transform: Φ on a, Ψ on b, Υ⁻¹ on c̃."""
        return _map_additions(self.phi), _map_additions(self.psi), _map_additions(self.upsilon_inv)

    def is_integral(self) -> bool:
        """True when the core, the transforms and Υ⁻¹ all have integer coefficients (bit-exact on integers)."""
        return all(np.asarray(x).dtype != object for x in
                   (self.phi, self.psi, self.upsilon_inv, self.Uc, self.Vc, self.Wc))

    def summary(self) -> dict:
        plain = additions(self.algorithm)
        core = self.core_additions()
        return dict(name=self.algorithm.name, shape=self.algorithm.shape_str, rank=self.algorithm.rank,
                    plain=sum(plain), core=sum(core), transforms=sum(self.transform_additions()),
                    plain_abc=plain, core_abc=core, transforms_abc=self.transform_additions(),
                    integral=self.is_integral())


# -- the search: minimum-weight bases of a row space ----------------------------------------------
def _candidates(M: np.ndarray, support: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ±1 combination of up to ``support`` rows of M: (coefficients c, vectors c·M), integer rows."""
    k = M.shape[0]
    coeffs = []
    for s in range(1, min(support, k) + 1):
        for rows in itertools.combinations(range(k), s):
            for signs in itertools.product((1, -1), repeat=s - 1):  # first sign +1: v and −v weigh alike
                c = np.zeros(k, dtype=np.int64)
                c[list(rows)] = (1,) + signs
                coeffs.append(c)
    C = np.array(coeffs, dtype=np.int64)
    return C, C @ M


class _ModpBasis:
    """Incremental row-echelon basis modulo a prime: ``add(v)`` is True iff v is independent so far."""

    def __init__(self, k: int):
        self.pivots: list[tuple[int, np.ndarray]] = []

    def reduce(self, v: np.ndarray) -> np.ndarray:
        v = v % _PRIME
        for col, row in self.pivots:
            if v[col]:
                v = (v - v[col] * row) % _PRIME
        return v

    def add(self, v: np.ndarray) -> bool:
        v = self.reduce(v)
        nz = np.flatnonzero(v)
        if not nz.size:
            return False
        col = int(nz[0])
        v = (v * pow(int(v[col]), -1, _PRIME)) % _PRIME
        self.pivots = [(c, (r - r[col] * v) % _PRIME) for c, r in self.pivots]
        self.pivots.append((col, v))
        return True


def _det_is_unit(P: np.ndarray) -> bool:
    try:
        inv = exact_inverse(P)
    except FactorizationError:
        return False
    return inv.dtype != object


def _sparsest_basis(M: np.ndarray, support: int, tries: int, rng: np.random.Generator) -> np.ndarray:
    """P (k×k, integer, invertible) making the rows of P·M a minimum-weight basis among the candidates.

    Ties between candidates of equal weight are broken at random over ``tries`` runs, keeping
    the first unimodular P of the least total weight (or the least-weight P if none is).
    """
    k = M.shape[0]
    C, X = _candidates(M, support)
    weight = np.count_nonzero(X, axis=1)
    best, best_key = None, None
    for t in range(tries):
        tie = rng.random(len(C)) if t else np.arange(len(C), dtype=float)  # try 0: rows first, stable
        order = np.lexsort((tie, weight))
        basis, chosen = _ModpBasis(k), []
        for i in order:
            if weight[i] and basis.add(C[i]):
                chosen.append(i)
                if len(chosen) == k:
                    break
        if len(chosen) < k:
            raise FactorizationError("the factor's rows are not independent: no basis change exists")
        P = C[chosen]
        key = (int(weight[chosen].sum()), not _det_is_unit(P))
        if best_key is None or key < best_key:
            best, best_key = P, key
        if best_key[1] is False and t >= 1:
            break
    return best


def _descend(M: np.ndarray, support: int, tries: int, rng: np.random.Generator) -> np.ndarray:
    """Repeat the basis search from the last basis found while it gets sparser: each round's
    candidates are combinations of the current (sparser) rows, which reaches further than one round."""
    P = np.eye(M.shape[0], dtype=np.int64)
    weight = np.count_nonzero(M)
    while True:
        step = _sparsest_basis(P @ M, support, tries, rng)
        new_weight = np.count_nonzero(step @ P @ M)
        if new_weight >= weight:
            return P
        P, weight = step @ P, new_weight


def sparsify(f: Factorization, support: int | None = None, tries: int = 8, seed: int = 0) -> AltBasis:
    """The sparsest alternative basis found for ``f`` (module docstring), proven exactly.

    ``support``: how many rows of a factor a candidate basis vector may combine (cost grows as
    C(k, support)·2^support); default 4 for factors of up to 16 rows (<4,4,4> in about a second),
    else 3. Strassen's 12-addition core needs 4. Never worse than the standard basis.
    """
    f = f.require_real()
    if not f.is_integral:
        raise FactorizationError(f"{f.name}: alternative bases are searched for integer algorithms only")
    rng = np.random.default_rng(seed)
    U, V, W = (np.asarray(x, dtype=np.int64) for x in (f.U, f.V, f.W))
    Pu, Pv, Pw = (_descend(M, support or (4 if M.shape[0] <= 16 else 3), tries, rng) for M in (U, V, W))
    # Uc = Pu·U with U = Φᵀ·Uc, so Φ = Pu⁻ᵀ; likewise Ψ = Pv⁻ᵀ; Wc = Υ·W, so Υ = Pw.
    phi = exact_inverse(Pu).T
    psi = exact_inverse(Pv).T
    alt = AltBasis(f, to_exact(np.asarray(phi, dtype=object)), to_exact(np.asarray(psi, dtype=object)),
                   to_exact(Pw), to_exact(Pu @ U), to_exact(Pv @ V), to_exact(Pw @ W),
                   Provenance(source=f.label(), found_by="fastmm compiler.algebra.altbasis",
                              method="alternative basis: minimum-weight row bases (±1 combinations of a few "
                                     "rows, greedy over a matroid, repeated from the sparser basis)"))
    return alt.verify()


# -- files --------------------------------------------------------------------------------------
def _enc(a: np.ndarray) -> list:
    return [[x if isinstance(x, int) else (int(x) if Fraction(x).denominator == 1 else str(Fraction(x)))
             for x in row] for row in np.asarray(a, dtype=object).tolist()]


def _dec(rows: list) -> np.ndarray:
    return to_exact(np.array([[Fraction(x) for x in row] for row in rows], dtype=object))


def save_altbasis(path: str | Path, items: list[AltBasis]) -> None:
    """Write alternative-basis algorithms as JSON (exact: integers or "p/q" strings)."""
    from compiler.algebra.formats import _atomic_write  # the one atomic writer of factor files
    doc = {"format": ALTBASIS_FORMAT, "version": 1, "algorithms": [
        {"name": a.algorithm.name, "shape": list(a.algorithm.shape), "rank": a.algorithm.rank,
         "provenance": a.provenance.to_dict(), "algorithm_provenance": a.algorithm.provenance.to_dict(),
         "phi": _enc(a.phi), "psi": _enc(a.psi), "upsilon": _enc(a.upsilon),
         "Uc": _enc(a.Uc), "Vc": _enc(a.Vc), "Wc": _enc(a.Wc), "summary": {
             k: v for k, v in a.summary().items() if k in ("plain", "core", "transforms", "integral")}}
        for a in items]}
    text = json.dumps(doc, separators=(",", ":"))  # compact: the matrices are most of it
    _atomic_write(Path(path), lambda fh: fh.write(text.encode()))


def altbasis_entries(path: str | Path) -> list[dict]:
    """The entries of an alternative-basis JSON file as stored (not decoded, not proven)."""
    doc = json.loads(Path(path).read_text())
    if doc.get("format") != ALTBASIS_FORMAT:
        raise FactorizationError(f"{path}: not a {ALTBASIS_FORMAT} file")
    return list(doc["algorithms"])


def decode_altbasis(d: dict) -> AltBasis:
    """One stored entry as an ``AltBasis``, not yet proven: call ``verify()`` before any use."""
    phi, psi, ups = _dec(d["phi"]), _dec(d["psi"]), _dec(d["upsilon"])
    Uc, Vc, Wc = _dec(d["Uc"]), _dec(d["Vc"]), _dec(d["Wc"])
    U = _mat(np.asarray(phi, dtype=object).T, Uc)
    V = _mat(np.asarray(psi, dtype=object).T, Vc)
    W = _mat(exact_inverse(ups), Wc)
    f = Factorization(tuple(d["shape"]), U, V, W, "Q", d["name"],
                      Provenance.from_dict(d.get("algorithm_provenance")))
    return AltBasis(f, phi, psi, ups, Uc, Vc, Wc, Provenance.from_dict(d.get("provenance")))


def load_altbasis(path: str | Path) -> list[AltBasis]:
    """Read and prove (``AltBasis.verify``) every alternative-basis algorithm in a JSON file."""
    return [decode_altbasis(d).verify() for d in altbasis_entries(path)]


def _is_alphatensor(f: Factorization) -> bool:
    """AlphaTensor's published factors (CC-BY, DeepMind) are read from their files, never stored here."""
    text = " ".join(str(v) for v in f.provenance.to_dict().values()) + " " + f.label()
    return "alphatensor" in text.lower() or "deepmind" in text.lower()


def main(argv: list[str] | None = None) -> int:
    """``python -m compiler.algebra.altbasis FILE... --out OUT.json``: the sparsest alternative basis
    of every integer entry of the factor files (AlphaTensor-derived entries are skipped: they are
    read from AlphaTensor's own files, not stored), proven exactly, with a table of additions."""
    import argparse
    from compiler.algebra.formats import load
    ap = argparse.ArgumentParser(prog="python -m compiler.algebra.altbasis", description=main.__doc__)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    items, seen = [], set()
    for path in args.files:
        for f in load(path):
            if f.field != "Q" or not f.is_integral or _is_alphatensor(f) or f.digest in seen:
                continue
            seen.add(f.digest)
            alt = sparsify(f)
            s = alt.summary()
            if s["core"] >= s["plain"]:
                continue  # the standard basis is already the sparsest found (naive algorithms)
            print(f"{f.label():52s} {s['shape']} rank {s['rank']:3d}: plain {s['plain']:4d} -> core {s['core']:4d}"
                  f" + transforms {s['transforms']:3d}{'' if s['integral'] else ' (rational)'}")
            items.append(alt)
    save_altbasis(args.out, items)
    print(f"{len(items)} alternative-basis algorithms written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
