"""Translation validation: run what an emitter will print, on random exact blocks, before it is written.

Every torch module is rendered from a list of operations (``emit_torch.render_steps``: ``copy``,
``scale``, ``add``, ``sub``, ``axpy``, in-place ``add_``/``sub_``/``axpy_``, ``product`` with alpha
and beta, ``batched``, and ``fused``: one combination table, its entries computed from the buffers
as they were before the step and then stored, as ``kernels/_cpu_fused.c`` does tile by tile) over
named buffers: the operand and result blocks, and the workspace slots
that the memory plan reuses. ``check_torch_ops`` executes exactly those operations, in order, with
the same buffers (so a slot overwritten while still live, or an in-place update that clobbers a
source, gives a wrong value here as it would on a device), on random exact blocks:

- every block is a random 2×2 matrix over the integers modulo the prime p = 2³⁰ − 35 (so blocks
  do not commute, as in the recursion), and every coefficient is its exact residue (a Fraction
  q = u/v is u·v⁻¹ mod p); arithmetic is exact integer arithmetic, never floats;
- a wrong program computes a different bilinear form of the blocks, a nonzero polynomial of degree
  2 in their entries, which vanishes at a random point with probability at most 2/p (Schwartz–
  Zippel): about 2·10⁻⁹ per check, and the seed is fixed (reproducible). Exact symbolic forms gave
  the same verdicts and cost 19 s on AlphaTensor's <9,11,12;760> where this costs well under one.

Every c-block must be exactly ``Σ_k a_ik · b_kj``: the definition of A·B, not the
program the compiler derived, so this also proves CSE and lowering. One level suffices for any
depth: the module applies the same level to its blocks, and a bilinear algorithm that is exact over
non-commuting blocks is exact recursively. A failure raises ``ValidationError`` naming the
algorithm, the step (its index and the line printed for it) and the block that is wrong.

``check_gpu_program`` does the same for the lowered plan the Triton and CUDA templates render
(``compiler.codegen.gpu_lowering.GpuProgram``): the combination assignments in their order, the
products, and the output combinations (or the fused epilogue's ``Use``s).

``check_linear_ops`` runs a rendered block-linear map (an alternative-basis transform,
``compiler.ir.linmap``) against its matrix, and ``check_altbasis`` one whole alternative-basis level
(rendered transforms, rendered core, rendered inverse transform) against A·B; the core alone is
checked by ``check_torch_ops(..., tensor=)`` against the bilinear map it must compute.

Public API: ``ValidationError``, ``check_torch_ops(shape, rank, steps, name, names, tensor=None,
inputs=None)``, ``check_gpu_program(gp)``, ``check_linear_ops(ops, T, inplace, name)``,
``check_altbasis(shape, rank, core_steps, outer_ops, names, name, tensor)``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import numpy as np

P = (1 << 30) - 35  # a prime below 2^30: a 2×2 product of residues stays below 2^61 in int64


class ValidationError(ValueError):
    """An emitted program does not compute A·B; the message names the first wrong step."""


def residue(c) -> int:
    """The exact residue of a rational coefficient modulo ``P``."""
    q = Fraction(c)
    return q.numerator % P * pow(q.denominator % P, -1, P) % P


def _coef(text) -> int:
    """The exact value (as a residue) of a literal as the emitter printed it: an int, a float
    repr of a dyadic rational, or ``(p / q)``."""
    if isinstance(text, (int, Fraction)):
        return residue(text)
    s = str(text).strip()
    if s.startswith("(") and "/" in s:
        p, q = s.strip("()").split("/")
        return residue(Fraction(int(p), int(q)))
    return residue(Fraction(float(s)) if ("e" in s or "." in s) else Fraction(int(s)))


class Blocks:
    """Random residue blocks for one shape, fixed by ``seed``: ``value(side, i, j)``."""

    def __init__(self, shape: tuple[int, int, int], seed: int = 0, tensor=None, inputs=None):
        """``tensor``: the bilinear map that ``c`` holds (shape (n·m, m·p, n·p), exact), A·B when
        None; ``inputs``: given (a, b) residue blocks of shapes (n, m, 2, 2) and (m, p, 2, 2)."""
        n, m, p = shape
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, P, size=(n, m, 2, 2), dtype=np.int64)
        self.b = rng.integers(0, P, size=(m, p, 2, 2), dtype=np.int64)
        if inputs is not None:
            self.a, self.b = (np.asarray(x, dtype=np.int64) % P for x in inputs)
        self.c = np.zeros((n, p, 2, 2), dtype=np.int64)
        if tensor is None:
            for i in range(n):
                for j in range(p):
                    for k in range(m):
                        self.c[i, j] = (self.c[i, j] + self.a[i, k] @ self.b[k, j]) % P
            return
        for q, s, l in np.argwhere(np.asarray(tensor, dtype=object) != 0):
            t = residue(np.asarray(tensor, dtype=object)[q, s, l])
            self.c[l // p, l % p] = (self.c[l // p, l % p] + t * mm(self.a[q // m, q % m], self.b[s // p, s % p])) % P

    def value(self, side: str, i: int, j: int) -> np.ndarray:
        return {"a": self.a, "b": self.b, "c": self.c}[side][i, j]


def mm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y) % P


def node_values(blocks: Blocks):
    """A memoised evaluator: IR node → its value on ``blocks``."""
    memo: dict[int, np.ndarray] = {}

    def value(node) -> np.ndarray:
        hit = memo.get(id(node))
        if hit is not None:
            return hit
        if node.op == "input":
            out = blocks.value(node.side, *node.index)
        elif node.op == "mul":
            out = mm(value(node.args[0]), value(node.args[1]))
        else:
            out = np.zeros((2, 2), dtype=np.int64)
            for a, c in node.terms:
                out = (out + residue(c) * value(a)) % P
        memo[id(node)] = out
        return out
    return value


def check_torch_ops(shape: tuple[int, int, int], rank: int, steps: Iterable[dict], name: str, names,
                    seed: int = 0, tensor=None, inputs=None) -> np.ndarray:
    """Execute rendered torch steps (``{"comment", "ops", "intent"}``); raise on the first wrong one,
    numbered as the schedule's steps (``Schedule.steps[k]``).

    ``names(side, i, j)`` is the emitter's block naming (``emit_torch.block_name``). After each step
    with an ``intent`` (``(buffer, ((node, coef), ...))``) the buffer must hold that IR value; at the
    end every c-block must hold its block of A·B, or of the bilinear map ``tensor`` (an
    alternative-basis core: the matmul tensor in its transformed bases). ``inputs``: given (a, b)
    residue blocks instead of random ones (``check_altbasis`` feeds the transformed operands).
    Returns the c-blocks, (n, p, 2, 2)."""
    n, m, p = shape
    blocks = Blocks(shape, seed, tensor, inputs)
    value = node_values(blocks)
    buf: dict[str, np.ndarray] = {}
    for side, rows, cols in (("a", n, m), ("b", m, p)):
        for i in range(rows):
            for j in range(cols):
                buf[names(side, i, j)] = blocks.value(side, i, j)
    inputs = set(buf)
    written: dict[str, tuple[int, str]] = {}
    line = ""

    def read(ref: str, k: int) -> np.ndarray:
        if ref not in buf:
            raise ValidationError(f"{name}: step {k} ({line}) reads {ref} before anything is written to it")
        return buf[ref]

    def write(ref: str, v: np.ndarray, k: int) -> None:
        if ref in inputs:
            raise ValidationError(f"{name}: step {k} ({line}) writes the input block {ref}")
        buf[ref] = v % P
        written[ref] = (k, line)

    k = -1
    for step in steps:
        if not step["ops"]:
            continue  # a comment line only (an output completes); k counts the schedule's steps
        k += 1
        for op in step["ops"]:
            kind, dst = op["op"], op.get("dst")
            line = f"{kind} {dst} <- {op.get('x', '')} {op.get('y', '')}".strip() + (
                f"; # {step['comment']}" if step.get("comment") else "")
            if kind == "copy":
                write(dst, read(op["x"], k), k)
            elif kind == "scale":
                write(dst, _coef(op["alpha"]) * read(op["x"], k), k)
            elif kind in ("add", "sub", "axpy"):
                c = {"add": 1, "sub": P - 1}.get(kind) or _coef(op["alpha"])
                write(dst, read(op["x"], k) + c * read(op["y"], k), k)
            elif kind in ("add_", "sub_", "axpy_"):
                c = {"add_": 1, "sub_": P - 1}.get(kind) or _coef(op["alpha"])
                write(dst, read(dst, k) + c * read(op["x"], k), k)
            elif kind == "product":
                prod = _coef(op["alpha"]) * mm(read(op["x"], k), read(op["y"], k)) % P
                write(dst, read(dst, k) + prod if int(op["beta"]) else prod, k)
            elif kind == "fused":
                # every entry from what the buffers hold before the step, then every output: the
                # kernel reads a whole tile before it writes it (so a dst may also be a src)
                srcs = [read(x, k) for x in op["srcs"]]
                vals: list[np.ndarray] = []
                for terms in op["entries"]:
                    acc_ = np.zeros((2, 2), dtype=np.int64)
                    for src, c in terms:
                        acc_ = (acc_ + _coef(c) * (srcs[src] if src < len(srcs) else vals[src - len(srcs)])) % P
                    vals.append(acc_)
                new: dict[str, np.ndarray] = {}
                for e, d, accumulate in op["outputs"]:
                    dst_name = op["dsts"][d]
                    base = new.get(dst_name, read(dst_name, k) if accumulate else None)
                    new[dst_name] = vals[e] if base is None or not accumulate else (base + vals[e]) % P
                for dst_name, val in new.items():
                    write(dst_name, val, k)
            elif kind == "batched":
                for r in range(rank):
                    write(f"P[{r}]", mm(read(f"S[{r}]", k), read(f"T[{r}]", k)), k)
            else:
                raise ValidationError(f"{name}: step {k} has an unknown operation {kind!r}")
        for ref, terms in ([step["intent"]] if step.get("intent") else []) + list(step.get("intents", [])):
            want = np.zeros((2, 2), dtype=np.int64)
            for node, c in terms:
                want = (want + residue(c) * value(node)) % P
            if ref not in buf or not np.array_equal(buf[ref], want):
                raise ValidationError(f"{name}: step {k} ({line}) leaves {ref} holding something other than "
                                      f"{' + '.join(f'{c}·{node!r}' for node, c in terms)[:160]}")
    for i in range(n):
        for j in range(p):
            q = names("c", i, j)
            if q not in buf or not np.array_equal(buf[q], blocks.c[i, j]):
                at = written.get(q)
                where = f"last written by step {at[0]} ({at[1]})" if at else "never written"
                what = "A·B" if tensor is None else "its bilinear map"
                raise ValidationError(f"{name}: {q} is not the ({i + 1},{j + 1}) block of {what}; {where}")
    return np.array([[buf[names("c", i, j)] for j in range(p)] for i in range(n)], dtype=np.int64)


def _run_linear(ops: Iterable[dict], buf: dict, readonly: set, name: str) -> None:
    """Execute rendered linear-map operations (``emit_altbasis.linear_ops``) on residue buffers."""
    for k, op in enumerate(ops):
        kind, dst = op["op"], op["dst"]
        if dst in readonly:
            raise ValidationError(f"{name}: operation {k} ({kind} {dst}) writes the read-only operand")

        def read(ref: str) -> np.ndarray:
            if ref not in buf:
                raise ValidationError(f"{name}: operation {k} ({kind} {dst}) reads {ref} before it is written")
            return buf[ref]
        if kind == "copy":
            v = read(op["x"])
        elif kind == "scale":
            v = _coef(op["alpha"]) * read(op["x"])
        elif kind in ("add", "sub", "axpy"):
            v = read(op["x"]) + ({"add": 1, "sub": P - 1}.get(kind) or _coef(op["alpha"])) * read(op["y"])
        elif kind in ("add_", "sub_", "axpy_"):
            v = read(dst) + ({"add_": 1, "sub_": P - 1}.get(kind) or _coef(op["alpha"])) * read(op["x"])
        elif kind == "scale_":
            v = _coef(op["alpha"]) * read(dst)
        else:
            raise ValidationError(f"{name}: operation {k} has an unknown kind {kind!r}")
        buf[dst] = v % P


def _apply_linear(ops, x: np.ndarray, inplace: bool, name: str) -> np.ndarray:
    """The rendered map on blocks x (k, 2, 2): in place from Y = x, else from X = x into fresh Y."""
    k = x.shape[0]
    buf = {f"Y[{i}]": x[i] for i in range(k)} if inplace else {f"X[{j}]": x[j] for j in range(k)}
    _run_linear(ops, buf, set() if inplace else {f"X[{j}]" for j in range(k)}, name)
    missing = [i for i in range(k) if f"Y[{i}]" not in buf]
    if missing:
        raise ValidationError(f"{name}: Y[{missing[0]}] is never written")
    return np.array([buf[f"Y[{i}]"] for i in range(k)], dtype=np.int64)


def check_linear_ops(ops, T, inplace: bool, name: str, seed: int = 0) -> None:
    """Run a rendered block-linear map on random residue blocks; every Y[i] must be Σ_j T[i,j]·x_j."""
    T = np.asarray(T, dtype=object)
    k = T.shape[0]
    x = np.random.default_rng(seed).integers(0, P, size=(k, 2, 2), dtype=np.int64)
    y = _apply_linear(ops, x, inplace, name)
    for i in range(k):
        want = np.zeros((2, 2), dtype=np.int64)
        for j in range(k):
            if T[i, j] != 0:
                want = (want + residue(T[i, j]) * x[j]) % P
        if not np.array_equal(y[i], want):
            raise ValidationError(f"{name}: Y[{i}] is not row {i} of the map applied to the blocks")


def check_altbasis(shape: tuple[int, int, int], rank: int, core_steps, outer_ops: dict, names, name: str,
                   tensor, seed: int = 0) -> None:
    """One whole level of an alternative-basis module on random residue blocks: the rendered
    level-1 Φ on the a-blocks and Ψ on the b-blocks, the rendered core steps on their results (which
    must hold the core's bilinear map ``tensor`` of them) and the rendered Υ⁻¹ on the core's must
    give A·B (``outer_ops``: side -> rendered operations)."""
    n, m, p = shape
    blocks = Blocks(shape, seed)
    at = _apply_linear(outer_ops["a"], blocks.a.reshape(n * m, 2, 2), False, f"{name}: Φ").reshape(n, m, 2, 2)
    bt = _apply_linear(outer_ops["b"], blocks.b.reshape(m * p, 2, 2), False, f"{name}: Ψ").reshape(m, p, 2, 2)
    ct = check_torch_ops(shape, rank, core_steps, f"{name} core", names, seed, tensor, (at, bt))
    c = _apply_linear(outer_ops["c"], ct.reshape(n * p, 2, 2), False, f"{name}: Υ⁻¹").reshape(n, p, 2, 2)
    for i in range(n):
        for j in range(p):
            if not np.array_equal(c[i, j], blocks.c[i, j]):
                raise ValidationError(f"{name}: transform, core and inverse transform give a wrong "
                                      f"({i + 1},{j + 1}) block of A·B")


def check_gpu_program(gp, seed: int = 0) -> None:
    """Execute a ``GpuProgram`` (what the Triton and CUDA templates render) on random exact blocks.

    Runs each combination stage in its order (temporaries, then results; a variable read before it
    is assigned is an error), the products ``m_r = s_r · t_r``, the output stage, and separately
    the fused GEMM's view (each product's expanded operand loads and its epilogue ``Use``s); both
    must give A·B."""
    label = f"{gp.label} (GPU lowering)"
    blocks = Blocks(gp.shape, seed)
    env: dict[str, np.ndarray] = {}
    for side in (gp.a, gp.b):
        for blk in side.blocks:
            env[blk.var] = blocks.value(side.letter, blk.row, blk.col)
    leaf = dict(env)

    def combine(terms, scope, where) -> np.ndarray:
        out = np.zeros((2, 2), dtype=np.int64)
        for t in terms:
            if t.var not in scope:
                raise ValidationError(f"{label}: {where} reads {t.name} before it is assigned")
            out = (out + residue(t.coef) * scope[t.var]) % P
        return out

    def run(side) -> None:
        for k, asg in enumerate(side.temps + side.results):
            env[asg.var] = combine(asg.terms, env, f"{side.letter}-stage step {k} ({asg.name})")

    run(gp.a)
    run(gp.b)
    fused: dict[str, np.ndarray] = {}
    for pr in gp.products:
        env[pr.var] = mm(env[f"s_{pr.index}"], env[f"t_{pr.index}"])
        direct = mm(combine(pr.a_terms, leaf, f"{pr.name}'s a loads"), combine(pr.b_terms, leaf, f"{pr.name}'s b loads"))
        if not np.array_equal(direct, env[pr.var]):
            raise ValidationError(f"{label}: {pr.name}'s fused operand loads differ from its combination stages")
        for use in pr.uses:
            fused[use.block.var] = (fused.get(use.block.var, 0) + residue(use.coef) * direct) % P
    run(gp.c)
    for blk in gp.c_blocks:
        want = blocks.c[blk.row, blk.col]
        if blk.var not in env or not np.array_equal(env[blk.var], want):
            raise ValidationError(f"{label}: the output stage's {blk.name} is not its block of A·B")
        if blk.var not in fused or not np.array_equal(fused[blk.var], want):
            raise ValidationError(f"{label}: the fused epilogue's {blk.name} is not its block of A·B")
