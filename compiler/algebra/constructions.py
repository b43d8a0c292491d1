"""Classical constructions that turn valid algorithms into new valid ones (algebra layer).

- ``kron(f, g)``: levels compose by Kronecker product, <n1n2, m1m2, p1p2> of rank R1·R2; the
  block index of the product is the outer index times the inner size plus the inner index
  (``i = i1·n2 + i2``), so one level of ``f`` applied to blocks each multiplied by ``g``.
- ``direct_sum(f, g, axis)``: <n,m,p1>⊕<n,m,p2> = <n,m,p1+p2> (axis 'p'), likewise 'n' and 'm',
  rank R1+R2.
- ``cyclic(f)``: <n,m,p> → <m,p,n> (the trace form Σ a_ij b_jk c_ik is invariant under rotation).
- ``transpose(f)``: <n,m,p> → <p,m,n> via Cᵀ = Bᵀ Aᵀ.
- ``change_basis(f, X, Y, Z)``: the GL(n)×GL(m)×GL(p) sandwich. ``f`` multiplies A' = X A Y⁻¹ by
  B' = Y B Z⁻¹, and C = X⁻¹ C' Z. Unimodular integer X, Y, Z keep integral factors integral.

Every result keeps the field of its inputs (Z2 if either is Z2) and says in its provenance how it
was made. Row-major block vectorisation: vec(X A Y) = (X ⊗ Yᵀ) vec(A).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance, to_exact


def _field(*fs: Factorization) -> str:
    return "Z2" if any(f.field == "Z2" for f in fs) else "Q"


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == object or b.dtype == object:
        return np.asarray(a, dtype=object) * np.asarray(b, dtype=object)
    return a * b


def _kron_factor(A: np.ndarray, B: np.ndarray, r1: int, c1: int, r2: int, c2: int) -> np.ndarray:
    """Rows index an r×c block grid, row-major; the product grid is (r1·r2)×(c1·c2)."""
    R1, R2 = A.shape[1], B.shape[1]
    a = A.reshape(r1, c1, R1)
    b = B.reshape(r2, c2, R2)
    out = _mul(a[:, None, :, None, :, None], b[None, :, None, :, None, :])  # r1 r2 c1 c2 R1 R2
    return out.reshape(r1 * r2 * c1 * c2, R1 * R2)


def kron(f: Factorization, g: Factorization) -> Factorization:
    (n1, m1, p1), (n2, m2, p2) = f.shape, g.shape
    U = _kron_factor(f.U, g.U, n1, m1, n2, m2)
    V = _kron_factor(f.V, g.V, m1, p1, m2, p2)
    W = _kron_factor(f.W, g.W, n1, p1, n2, p2)
    name = f"({f.label()})⊗({g.label()})"
    return Factorization((n1 * n2, m1 * m2, p1 * p2), U, V, W, _field(f, g), name,
                         Provenance(source=f"{f.label()} ⊗ {g.label()}", method="Kronecker product"))


def _embed(F: np.ndarray, rows: int, cols: int, rows_new: int, cols_new: int, r0: int, c0: int) -> np.ndarray:
    out = np.zeros((rows_new, cols_new, F.shape[1]), dtype=F.dtype if F.dtype == object else np.int64)
    if F.dtype == object:
        out[...] = Fraction(0)
    out[r0:r0 + rows, c0:c0 + cols, :] = F.reshape(rows, cols, -1)
    return out.reshape(rows_new * cols_new, -1)


def _hcat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == object or b.dtype == object:
        return np.concatenate([a.astype(object), b.astype(object)], axis=1)
    return np.concatenate([a, b], axis=1)


def direct_sum(f: Factorization, g: Factorization, axis: str) -> Factorization:
    """Stack two algorithms along ``axis`` ∈ {'n', 'm', 'p'}; the other two dimensions must agree."""
    (n1, m1, p1), (n2, m2, p2) = f.shape, g.shape
    if axis == "p":
        if (n1, m1) != (n2, m2):
            raise FactorizationError(f"direct sum along p needs equal n, m: {f.shape_str} vs {g.shape_str}")
        n, m, p = n1, m1, p1 + p2
        U = _hcat(f.U, g.U)
        V = _hcat(_embed(f.V, m, p1, m, p, 0, 0), _embed(g.V, m, p2, m, p, 0, p1))
        W = _hcat(_embed(f.W, n, p1, n, p, 0, 0), _embed(g.W, n, p2, n, p, 0, p1))
    elif axis == "n":
        if (m1, p1) != (m2, p2):
            raise FactorizationError(f"direct sum along n needs equal m, p: {f.shape_str} vs {g.shape_str}")
        n, m, p = n1 + n2, m1, p1
        U = _hcat(_embed(f.U, n1, m, n, m, 0, 0), _embed(g.U, n2, m, n, m, n1, 0))
        V = _hcat(f.V, g.V)
        W = _hcat(_embed(f.W, n1, p, n, p, 0, 0), _embed(g.W, n2, p, n, p, n1, 0))
    elif axis == "m":
        if (n1, p1) != (n2, p2):
            raise FactorizationError(f"direct sum along m needs equal n, p: {f.shape_str} vs {g.shape_str}")
        n, m, p = n1, m1 + m2, p1
        U = _hcat(_embed(f.U, n, m1, n, m, 0, 0), _embed(g.U, n, m2, n, m, 0, m1))
        V = _hcat(_embed(f.V, m1, p, m, p, 0, 0), _embed(g.V, m2, p, m, p, m1, 0))
        W = _hcat(f.W, g.W)
    else:
        raise FactorizationError(f"axis must be 'n', 'm' or 'p', got {axis!r}")
    name = f"{f.label()}⊕{axis}{g.label()}"
    return Factorization((n, m, p), U, V, W, _field(f, g), name,
                         Provenance(source=f"{f.label()} ⊕ {g.label()} along {axis}", method="direct sum"))


def _permute_rows(F: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Rows indexed (r, c) row-major → rows indexed (c, r)."""
    return F.reshape(rows, cols, -1).transpose(1, 0, 2).reshape(rows * cols, -1)


def cyclic(f: Factorization) -> Factorization:
    """<n,m,p> → <m,p,n>: a' = b, b' = cᵀ, c' = aᵀ (Σ a_ij b_jk c_ik = Σ a'_jk b'_ki c'_ji)."""
    n, m, p = f.shape
    U = f.V
    V = _permute_rows(f.W, n, p)  # b'[k,i] = c[i,k]
    W = _permute_rows(f.U, n, m)  # c'[j,i] = a[i,j]
    return Factorization((m, p, n), U, V, W, f.field, f"cyc({f.label()})",
                         Provenance(source=f.label(), method="cyclic symmetry <n,m,p>→<m,p,n>"))


def transpose(f: Factorization) -> Factorization:
    """<n,m,p> → <p,m,n> via Cᵀ = Bᵀ Aᵀ."""
    n, m, p = f.shape
    U = _permute_rows(f.V, m, p)  # a'[k,j] = b[j,k]
    V = _permute_rows(f.U, n, m)  # b'[j,i] = a[i,j]
    W = _permute_rows(f.W, n, p)  # c'[k,i] = c[i,k]
    return Factorization((p, m, n), U, V, W, f.field, f"T({f.label()})",
                         Provenance(source=f.label(), method="transposition <n,m,p>→<p,m,n>"))


def permute_shape(f: Factorization, target: tuple[int, int, int]) -> Factorization:
    """Some composition of cyclic shifts and transposition that turns ``f.shape`` into ``target``."""
    cands = [f, cyclic(f), cyclic(cyclic(f))]
    cands += [transpose(c) for c in cands]
    for c in cands:
        if c.shape == tuple(target):
            return c
    raise FactorizationError(f"{f.shape_str} is not a permutation of {target}")


def exact_inverse(X) -> np.ndarray:
    """Inverse of a square matrix in exact rational arithmetic (Gauss–Jordan over Fractions)."""
    A = [[Fraction(x) for x in row] for row in np.asarray(X, dtype=object).tolist()]
    n = len(A)
    if any(len(r) != n for r in A):
        raise FactorizationError("change of basis needs square matrices")
    I = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]
    for c in range(n):
        piv = next((r for r in range(c, n) if A[r][c] != 0), None)
        if piv is None:
            raise FactorizationError("change-of-basis matrix is singular")
        A[c], A[piv] = A[piv], A[c]
        I[c], I[piv] = I[piv], I[c]
        inv = 1 / A[c][c]
        A[c] = [x * inv for x in A[c]]
        I[c] = [x * inv for x in I[c]]
        for r in range(n):
            if r != c and A[r][c] != 0:
                fac = A[r][c]
                A[r] = [x - fac * y for x, y in zip(A[r], A[c])]
                I[r] = [x - fac * y for x, y in zip(I[r], I[c])]
    return to_exact(np.array(I, dtype=object))


def _kron2(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    return np.kron(np.asarray(X, dtype=object), np.asarray(Y, dtype=object))


def change_basis(f: Factorization, X, Y, Z) -> Factorization:
    """The sandwich by X ∈ GL(n), Y ∈ GL(m), Z ∈ GL(p) (see module docstring)."""
    n, m, p = f.shape
    X, Y, Z = (to_exact(M) for M in (X, Y, Z))
    if X.shape != (n, n) or Y.shape != (m, m) or Z.shape != (p, p):
        raise FactorizationError(f"change of basis for {f.shape_str} needs {n}×{n}, {m}×{m}, {p}×{p} matrices")
    Xi, Yi, Zi = exact_inverse(X), exact_inverse(Y), exact_inverse(Z)
    # u'_r = (X ⊗ Y⁻ᵀ)ᵀ u_r, v'_r = (Y ⊗ Z⁻ᵀ)ᵀ v_r, W' = (X⁻¹ ⊗ Zᵀ) W
    U = _kron2(X, Yi.T).T.dot(np.asarray(f.U, dtype=object))
    V = _kron2(Y, Zi.T).T.dot(np.asarray(f.V, dtype=object))
    W = _kron2(Xi, Z.T).dot(np.asarray(f.W, dtype=object))
    return Factorization(f.shape, U, V, W, f.field, f"basis({f.label()})",
                         Provenance(source=f.label(), method="change of basis (GL(n)×GL(m)×GL(p) sandwich)"))
