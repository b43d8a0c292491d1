"""The factorization type, the matmul tensor and exact verification (algebra layer: numpy only).

The one convention (README, "What U, V, W mean"): ``c = a @ b`` with ``a`` n×m, ``b`` m×p, ``c`` n×p,
blocks indexed row-major.

- ``U`` has shape (n·m, R): column r says which combination of a-blocks enters product r.
- ``V`` has shape (m·p, R): the same for b-blocks.
- ``W`` has shape (n·p, R): ``c[i,k] = Σ_r W[i·p+k, r] · M_r``.  W is NOT transposed.
- The tensor is ``T[i·m+j, j·p+k, i·p+k] = 1``; a factorization is valid exactly when
  ``einsum('ir,jr,kr->ijk', U, V, W) == T``, checked in exact integer arithmetic
  (rational coefficients are scaled to integers first), or modulo 2 for ``field == "Z2"``.

Coefficients are held exactly: an ``int64`` array when every entry is an integer, otherwise
an object array of ``fractions.Fraction``. Arrays are read-only; a ``Factorization`` is
immutable and hashable by content (``digest``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from fractions import Fraction
from typing import Iterable, Literal, Sequence

import numpy as np

Field = Literal["Q", "Z2"]
FIELDS: tuple[str, ...] = ("Q", "Z2")

# Exact integer products in float64 BLAS are exact while every partial sum stays below 2**53.
_FLOAT64_EXACT = 2**53


class FactorizationError(ValueError):
    """A factorization (or a file holding one) is malformed: wrong shapes, non-numeric data, ..."""


@dataclass(frozen=True)
class Provenance:
    """Where an algorithm came from: ``source`` (paper or file), ``found_by``, ``method``, ``date``."""

    source: str = ""
    found_by: str = ""
    method: str = ""
    date: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Provenance":
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {k: v for k, v in d.items() if k not in known}
        kw = {k: str(v) for k, v in d.items() if k in known}
        if extra:  # keep unknown keys rather than drop them: nothing lost
            kw["notes"] = (kw.get("notes", "") + " " + " ".join(f"{k}={v}" for k, v in sorted(extra.items()))).strip()
        return cls(**kw)


def to_exact(x) -> np.ndarray:
    """Convert array-like coefficients to the exact representation (int64 or object Fractions).

    Floats are accepted only when they are exact rationals with a power-of-two denominator of
    at most 2**20 (AlphaTensor stores 1/2 and 1/8 as float64); anything else is an error.
    Conversion works on the distinct values only, so large factor files convert quickly.
    """
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        return _readonly(arr.astype(np.int64))
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise FactorizationError("non-finite coefficient")
        for e in range(21):
            scaled = arr * float(2**e)  # exact: multiplying by a power of two only shifts the exponent
            if (scaled == np.round(scaled)).all():
                break
        else:
            raise FactorizationError("a float coefficient is not an exact rational with a small denominator")
        ints = scaled.astype(np.int64)
        if e == 0:
            return _readonly(ints)
        uniq, inv = np.unique(ints, return_inverse=True)
        vals = np.empty(len(uniq), dtype=object)
        vals[:] = [Fraction(int(u), 2**e) for u in uniq]
        return _readonly(vals[inv.ravel()].reshape(arr.shape))
    if arr.dtype.kind != "O":
        raise FactorizationError(f"non-numeric coefficient array (dtype {arr.dtype})")
    flat = arr.ravel().tolist()
    # Keyed by identity: exact arrays share a few Fraction objects, and hashing Fractions is slow.
    # ``flat`` keeps every object alive, so the ids stay unique during the conversion.
    conv: dict[int, Fraction] = {}
    for v in flat:
        if id(v) not in conv:
            conv[id(v)] = _to_fraction(_hashable(v))
    fr = [conv[id(v)] for v in flat]
    if all(q.denominator == 1 for q in conv.values()):
        return _readonly(np.array([int(q) for q in fr], dtype=np.int64).reshape(arr.shape))
    out = np.empty(len(fr), dtype=object)
    out[:] = fr
    return _readonly(out.reshape(arr.shape))


def _hashable(v):
    return v.item() if isinstance(v, np.generic) else v


def _to_fraction(v) -> Fraction:
    if isinstance(v, (bool, np.bool_)):
        raise FactorizationError(f"boolean coefficient {v!r}")
    if isinstance(v, (int, Fraction)):
        return Fraction(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise FactorizationError(f"non-finite coefficient {v!r}")
        q = Fraction(v)
        if q.denominator > 2**20:
            raise FactorizationError(f"coefficient {v!r} is not an exact small rational")
        return q
    if isinstance(v, str):
        try:
            return Fraction(v)
        except (ValueError, ZeroDivisionError) as e:
            raise FactorizationError(f"non-numeric coefficient {v!r}") from e
    raise FactorizationError(f"non-numeric coefficient {v!r} ({type(v).__name__})")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _distinct_objects(flat: list) -> dict[int, object]:
    # Keyed by identity, as in to_exact: hashing Fractions is slow (seconds on the largest
    # AlphaTensor entries); ``flat`` keeps every object alive, so the ids stay unique.
    seen: dict[int, object] = {}
    for v in flat:
        if id(v) not in seen:
            seen[id(v)] = v
    return seen


def common_denominator(a: np.ndarray) -> int:
    if a.dtype != object:
        return 1
    return math.lcm(*(Fraction(x).denominator for x in _distinct_objects(a.ravel().tolist()).values())) \
        if a.size else 1


def scaled_integers(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``(A_int, d)`` with ``a == A_int / d`` exactly and ``A_int`` an integer array."""
    d = common_denominator(a)
    if d == 1 and a.dtype != object:
        return a, 1
    flat = a.ravel().tolist()
    conv = {k: int(Fraction(v) * d) for k, v in _distinct_objects(flat).items()}
    big = max((abs(v) for v in conv.values()), default=0) >= 2**62
    ints = np.array([conv[id(v)] for v in flat], dtype=object if big else np.int64).reshape(a.shape)
    return ints, d


def matmul_tensor(n: int, m: int, p: int) -> np.ndarray:
    """The <n,m,p> matmul tensor, ``T[i·m+j, j·p+k, i·p+k] = 1`` (int64, shape (nm, mp, np))."""
    for d in (n, m, p):
        if not isinstance(d, (int, np.integer)) or d < 1:
            raise FactorizationError(f"shape entries must be positive integers, got {(n, m, p)}")
    t = np.zeros((n * m, m * p, n * p), dtype=np.int64)
    i, j, k = np.meshgrid(np.arange(n), np.arange(m), np.arange(p), indexing="ij")
    t[(i * m + j).ravel(), (j * p + k).ravel(), (i * p + k).ravel()] = 1
    return t


def reconstruct(U: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, int]:
    """Exact ``(einsum('ir,jr,kr->ijk', U, V, W) · d, d)`` as integers, ``d`` the product of denominators."""
    (Ui, du), (Vi, dv), (Wi, dw) = scaled_integers(U), scaled_integers(V), scaled_integers(W)
    R = Ui.shape[1]
    if all(x.dtype == np.int64 for x in (Ui, Vi, Wi)):
        bound = R * _maxabs(Ui) * _maxabs(Vi) * _maxabs(Wi)
        if bound < _FLOAT64_EXACT:
            # Every product and partial sum is an integer of magnitude <= bound < 2**53, so
            # float64 BLAS computes it exactly (no rounding can occur); this is not a tolerance.
            uv = (Ui[:, None, :].astype(np.float64) * Vi[None, :, :]).reshape(-1, R)
            t = (uv @ Wi.T.astype(np.float64)).round().astype(np.int64)
            return t.reshape(Ui.shape[0], Vi.shape[0], Wi.shape[0]), du * dv * dw
    Uo, Vo, Wo = (np.asarray(x, dtype=object) for x in (Ui, Vi, Wi))
    uv = (Uo[:, None, :] * Vo[None, :, :]).reshape(-1, R)
    t = uv.dot(Wo.T)
    return t.reshape(Ui.shape[0], Vi.shape[0], Wi.shape[0]), du * dv * dw


def _maxabs(a: np.ndarray) -> int:
    return int(np.abs(a).max()) if a.size else 0


@dataclass(frozen=True)
class Mismatch:
    """One wrong tensor entry: ``T[a, b, c]`` should be ``expected`` but the factors give ``got``."""

    a: int
    b: int
    c: int
    got: Fraction
    expected: int
    shape: tuple[int, int, int]

    def describe(self) -> str:
        n, m, p = self.shape
        ai, aj = divmod(self.a, m)
        bj, bk = divmod(self.b, p)
        ci, ck = divmod(self.c, p)
        got = self.got if self.got.denominator != 1 else int(self.got)
        return (f"T[{self.a},{self.b},{self.c}] (a[{ai},{aj}]·b[{bj},{bk}] → c[{ci},{ck}]) "
                f"is {got}, expected {self.expected}")


@dataclass(frozen=True)
class Verification:
    valid: bool
    field: str
    mismatches: tuple[Mismatch, ...]  # the first few wrong entries, in index order
    n_wrong: int

    def __bool__(self) -> bool:
        return self.valid

    def describe(self) -> str:
        if self.valid:
            return "VALID" + (" (mod 2)" if self.field == "Z2" else "")
        first = self.mismatches[0].describe()
        more = f" (+{self.n_wrong - 1} more wrong entries)" if self.n_wrong > 1 else ""
        return f"INVALID{' mod 2' if self.field == 'Z2' else ''}: {first}{more}"


@dataclass(frozen=True, eq=False)
class Factorization:
    """A bilinear algorithm for <n,m,p> with R block products (see module docstring).

    Construct with any array-likes; coefficients are converted to the exact representation.
    ``field`` is ``"Q"`` (valid over the rationals/reals) or ``"Z2"`` (valid only modulo 2).
    """

    shape: tuple[int, int, int]
    U: np.ndarray
    V: np.ndarray
    W: np.ndarray
    field: str = "Q"
    name: str = ""
    provenance: Provenance = dc_field(default_factory=Provenance)

    def __post_init__(self) -> None:
        try:
            shape = tuple(int(x) for x in self.shape)
        except (TypeError, ValueError) as e:
            raise FactorizationError(f"shape must be three positive integers, got {self.shape!r}") from e
        if len(shape) != 3 or min(shape) < 1:
            raise FactorizationError(f"shape must be three positive integers, got {self.shape!r}")
        if self.field not in FIELDS:
            raise FactorizationError(f"field must be one of {FIELDS}, got {self.field!r}")
        n, m, p = shape
        U, V, W = (to_exact(x) for x in (self.U, self.V, self.W))
        for nm, arr, rows in (("U", U, n * m), ("V", V, m * p), ("W", W, n * p)):
            if arr.ndim != 2 or arr.shape[0] != rows:
                raise FactorizationError(
                    f"{nm} must have shape ({rows}, R) for <{n},{m},{p}>, got {arr.shape}")
        if not (U.shape[1] == V.shape[1] == W.shape[1]):
            raise FactorizationError(f"U, V, W disagree on the rank: {U.shape[1]}, {V.shape[1]}, {W.shape[1]}")
        if self.field == "Z2":
            if any(a.dtype == object for a in (U, V, W)):
                raise FactorizationError("a Z2 factorization must have integer coefficients")
            U, V, W = (_readonly(np.mod(a, 2)) for a in (U, V, W))
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "U", U)
        object.__setattr__(self, "V", V)
        object.__setattr__(self, "W", W)
        if not isinstance(self.provenance, Provenance):
            object.__setattr__(self, "provenance", Provenance.from_dict(self.provenance))

    # -- basic facts -------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return int(self.U.shape[1])

    @property
    def nnz(self) -> tuple[int, int, int]:
        """Nonzero coefficients in U, V, W."""
        return tuple(int(np.count_nonzero(a != 0)) for a in (self.U, self.V, self.W))  # type: ignore[return-value]

    @property
    def is_integral(self) -> bool:
        return all(a.dtype != object for a in (self.U, self.V, self.W))

    @property
    def shape_str(self) -> str:
        return "<{},{},{}>".format(*self.shape)

    def label(self) -> str:
        return self.name or f"{'x'.join(map(str, self.shape))}-r{self.rank}"

    def __repr__(self) -> str:
        return (f"Factorization({self.label()!r}, shape={self.shape_str}, rank={self.rank}, "
                f"field={self.field}, nnz={self.nnz})")

    @property
    def digest(self) -> str:
        """SHA-256 of the shape, field and exact coefficients (not name or provenance).

        Computed once and kept: the factorization is immutable, and hashing the largest
        AlphaTensor entries takes seconds (``__hash__`` and ``__eq__`` go through here)."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = self._compute_digest()
            object.__setattr__(self, "_digest", cached)
        return cached

    def _compute_digest(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.shape}|{self.field}|".encode())
        for a in (self.U, self.V, self.W):
            ints, d = scaled_integers(a)
            h.update(f"|{a.shape}/{d}|".encode())
            h.update(ints.astype(np.int64).tobytes() if ints.dtype != object else repr(ints.tolist()).encode())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Factorization) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def coefficients(self) -> set[Fraction]:
        return {Fraction(x) for a in (self.U, self.V, self.W) for x in set(a.ravel().tolist())}

    def replace(self, **changes) -> "Factorization":
        return dataclasses.replace(self, **changes)

    # -- verification ------------------------------------------------------------------------
    def verify(self, field: str | None = None, max_report: int = 5) -> Verification:
        """Exact check of the Brent equations, in ``field`` (default: the factorization's own)."""
        fld = field or self.field
        if fld not in FIELDS:
            raise FactorizationError(f"field must be one of {FIELDS}, got {fld!r}")
        t, d = reconstruct(self.U, self.V, self.W)
        target = matmul_tensor(*self.shape)
        if fld == "Z2":
            if d % 2 == 0:  # halves have no meaning mod 2
                raise FactorizationError("coefficients with even denominators cannot be reduced mod 2")
            wrong = np.mod(t, 2) != target  # d odd: d ≡ 1 (mod 2)
        else:
            wrong = t != target * d
        idx = np.argwhere(wrong)
        mism = tuple(Mismatch(int(a), int(b), int(c), Fraction(int(t[a, b, c]), d), int(target[a, b, c]), self.shape)
                     for a, b, c in idx[:max_report])
        return Verification(not len(idx), fld, mism, int(len(idx)))

    def require_valid(self, field: str | None = None) -> "Factorization":
        res = self.verify(field)
        if not res:
            raise FactorizationError(f"{self.label()}: {res.describe()}")
        return self

    def require_real(self) -> "Factorization":
        """Refuse a mod-2 scheme where real arithmetic is asked for, with a clear message."""
        if self.field != "Q":
            raise FactorizationError(
                f"{self.label()} {self.shape_str} rank {self.rank} is valid only modulo 2 (field Z2); "
                "it does not compute a real matrix product")
        return self


def naive(n: int, m: int, p: int) -> Factorization:
    """The classical algorithm: one product a[i,j]·b[j,k] per (i,j,k), rank n·m·p."""
    R = n * m * p
    U = np.zeros((n * m, R), np.int64)
    V = np.zeros((m * p, R), np.int64)
    W = np.zeros((n * p, R), np.int64)
    r = 0
    for i in range(n):
        for j in range(m):
            for k in range(p):
                U[i * m + j, r] = V[j * p + k, r] = W[i * p + k, r] = 1
                r += 1
    return Factorization((n, m, p), U, V, W, "Q", f"naive-{n}x{m}x{p}-r{R}",
                         Provenance(source="classical definition", method="one product per (i,j,k)"))


def parse_shape(text: str | Sequence[int]) -> tuple[int, int, int]:
    """'4,4,4', '4x4x4' or '<4,4,4>' → (4, 4, 4)."""
    if not isinstance(text, str):
        vals = tuple(int(x) for x in text)
    else:
        s = text.strip().strip("<>").replace("x", ",").replace("×", ",")
        try:
            vals = tuple(int(x) for x in s.split(","))
        except ValueError as e:
            raise FactorizationError(f"cannot read a shape from {text!r}") from e
    if len(vals) != 3 or min(vals) < 1:
        raise FactorizationError(f"shape must be three positive integers, got {text!r}")
    return vals  # type: ignore[return-value]


def stack_columns(cols: Iterable[np.ndarray]) -> np.ndarray:
    return np.stack(list(cols), axis=1)
