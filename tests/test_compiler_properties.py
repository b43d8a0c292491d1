"""The whole compiler on algorithms it was not written for: exact, bit for bit, or refused.

Algorithms are drawn with hypothesis from library and AlphaTensor schemes and the constructions
that keep a scheme exactly valid: random unimodular basis changes (entries up to ±30, so
coefficients far from ±1), Kronecker products, direct sums, cyclic rotations and transposes.
Each is compiled by the torch backend at 1 and 2 levels with ``cutoff=1`` (every level really
runs), both schedules, CSE on and off, on odd sizes, and must equal ``a @ b`` exactly
(``torch.equal``) in float64 on small integers: integral coefficients, integral CSE temporaries
and integer data make every operation exact (all magnitudes stay far below 2**53 here), so any
difference is a compiler bug, not rounding.

Translation validation (``compiler.codegen.validate``) runs inside every emission; a test below
corrupts one step and checks that it is refused with a one-line error. The ``slow`` tier repeats
the properties with many more examples (``pytest -m slow tests/test_compiler_properties.py``).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler
from compiler import change_basis, cyclic, direct_sum, kron, naive, transpose
from compiler.algebra.library import library_algorithm
from compiler.codegen import emit_torch
from compiler.codegen.validate import ValidationError, check_torch_ops
from compiler.ir.schedule import Combine, Ref, Term, Fused
from _exactness import EXACT_INTEGERS, random_unimodular, stored_bound, unimodular

FAST = settings(max_examples=10, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bases(alphatensor):
    out = [library_algorithm(name) for name in ("strassen", "winograd", "laderman")]
    out.append(naive(2, 1, 3))
    if alphatensor is not None:
        out += [f for f in alphatensor if f.shape in ((2, 2, 2), (2, 3, 3), (2, 2, 3), (3, 3, 3))]
    return out


@st.composite
def algorithms(draw, bases):
    """An exactly valid scheme, built by one or two constructions from a base scheme."""
    f = draw(st.sampled_from(bases))
    for _ in range(draw(st.integers(1, 2))):
        n, m, p = f.shape
        kind = draw(st.sampled_from(["basis", "basis", "transpose", "cyclic", "kron", "sum"]))
        if kind == "basis":
            f = change_basis(f, *(draw(unimodular(d, multiplier=30, bound=30)) for d in (n, m, p)))
        elif kind == "transpose":
            f = transpose(f)
        elif kind == "cyclic":
            f = cyclic(f)
        elif kind == "kron" and f.rank <= 11:
            f = kron(f, draw(st.sampled_from([naive(1, 1, 2), naive(2, 1, 1), library_algorithm("strassen")])))
        elif kind == "sum" and f.rank <= 23:
            axis = draw(st.sampled_from("nmp"))
            g = {"n": naive(1, m, p), "m": naive(n, 1, p), "p": naive(n, m, 1)}[axis]
            f = direct_sum(f, g, axis=axis)
    f.require_valid()
    return f


def small_ints(shape, seed, e=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-e, e + 1, shape, generator=g).double()


def check_exact(f, levels, schedule, cse, sizes, seed):
    """Compile ``f`` and compare with ``a @ b`` bit for bit (float64, entries in -2..2)."""
    mm = compiler.compile(f, backend="torch", levels=levels, cutoff=1, schedule=schedule, cse=cse)
    M, K, N = sizes
    a, b = small_ints((M, K), seed), small_ints((K, N), seed + 1)
    c = mm(a, b)
    assert torch.equal(c, a @ b), f"{f.label()} <{f.shape_str}> levels={levels} {schedule} cse={cse}: " \
                                  f"max error {(c - a @ b).abs().max().item()}"


def _sizes(draw, f, levels):
    n, m, p = f.shape
    # at least one full block per level in every dimension, plus an odd remainder to peel
    return tuple(d ** levels + draw(st.integers(0, 2 * d)) for d in (n, m, p))


@pytest.fixture(scope="module")
def bases(request):
    try:
        at = request.getfixturevalue("alphatensor_real")
    except pytest.skip.Exception:
        at = None
    return _bases(at)


def _property(bases, data):
    f = data.draw(algorithms(bases))
    levels = data.draw(st.sampled_from([1, 2] if f.rank <= 23 else [1]))
    schedule = data.draw(st.sampled_from(["materialized", "streaming", "fused"]))
    cse = data.draw(st.booleans())
    check_exact(f, levels, schedule, cse, _sizes(data.draw, f, levels), data.draw(st.integers(0, 99)))


@FAST
@given(data=st.data())
def test_every_valid_algorithm_is_bit_exact(bases, data):
    _property(bases, data)


@pytest.mark.slow
@SLOW
@given(data=st.data())
def test_every_valid_algorithm_is_bit_exact_many(bases, data):
    _property(bases, data)


@settings(FAST, max_examples=5)
@given(data=st.data())
def test_integral_algorithms_get_integral_cse(bases, data):
    """Every coefficient CSE writes (temporaries, outputs, scalings) is an integer when the
    algorithm's are: the schedule's literals included."""
    f = data.draw(algorithms(bases))
    if any(Fraction(x).denominator != 1 for M in (f.U, f.V, f.W) for x in np.asarray(M).ravel()):
        return
    for kind in ("materialized", "streaming", "fused"):
        _, prog, sched = emit_torch.prepare(f, emit_torch.TorchConfig(schedule=kind))
        coefs = [c for node in prog.nodes() if node.op == "lin" for c in node.coefs]
        coefs += [t.coef for s in sched.steps for t in getattr(s, "terms", ())]
        coefs += [s.alpha for s in sched.steps if hasattr(s, "alpha")]
        assert all(Fraction(c).denominator == 1 for c in coefs), f"{f.label()} {kind}: fractional CSE"


def _basis_changed(f, seed, bound=30):
    rng = np.random.default_rng(seed)
    return change_basis(f, *(random_unimodular(rng, d, bound) for d in f.shape))


FIVE = ((2, 2, 2), (3, 3, 3), (2, 3, 4), (4, 4, 4), (3, 4, 5))


@pytest.mark.parametrize("shape", FIVE, ids=lambda s: "x".join(map(str, s)))
def test_alphatensor_basis_changes_are_bit_exact(alphatensor_real, shape):
    """AlphaTensor's <2,2,2;7>, <3,3,3;23>, <2,3,4;20>, <4,4,4;49>, <3,4,5;47> under a random
    unimodular change of basis: the family that gave wrong results (a c-buffer read after a
    completion cascade had added to it) and fractional CSE temporaries. One level and two, both
    schedules, CSE on, cutoff 0."""
    f = _basis_changed(next(g for g in alphatensor_real if g.shape == shape), 11)
    n, m, p = shape
    for levels in (1, 2):
        M, K, N = n ** levels + 1, m ** levels + 2, p ** levels + 1
        # operands and products stay below 2**53 (c-side partial sums: checked by the result itself)
        e = 2 if levels == 1 else 1
        assert stored_bound(f, levels, K, e) <= EXACT_INTEGERS["float64"]
        for schedule in ("materialized", "streaming", "fused"):
            mm = compiler.compile(f, backend="torch", levels=levels, cutoff=0, schedule=schedule)
            a, b = small_ints((M, K), 3, e), small_ints((K, N), 4, e)
            assert torch.equal(mm(a, b), a @ b), (shape, levels, schedule)


@pytest.mark.slow
@pytest.mark.parametrize("shape", FIVE, ids=lambda s: "x".join(map(str, s)))
def test_alphatensor_basis_changes_default_cutoff(alphatensor_real, shape):
    """The same at the default cutoff (128), at sizes whose blocks exceed it at two levels. At
    these sizes two levels of a change of basis with entries up to 30 reach 2**57 for <4,4,4;49>
    (stored values beyond 2**53 round in float64: not a compiler error), so the largest change of
    basis whose intermediates float64 holds exactly is taken."""
    n, m, p = shape
    K = 128 * m * m + 1
    for bound in (30, 10, 5, 3, 2):
        f = _basis_changed(next(g for g in alphatensor_real if g.shape == shape), 11, bound)
        if stored_bound(f, 2, K, 1, outputs=True) <= EXACT_INTEGERS["float64"]:
            break
    assert stored_bound(f, 2, K, 1, outputs=True) <= EXACT_INTEGERS["float64"]
    for schedule in ("materialized", "streaming", "fused"):
        mm = compiler.compile(f, backend="torch", levels=2, schedule=schedule)
        M, N = 128 * n * n + 3, 128 * p * p + 2
        a, b = small_ints((M, K), 5, e=1), small_ints((K, N), 6, e=1)
        assert torch.equal(mm(a, b), a @ b), (shape, schedule)


def test_a_corrupted_schedule_is_refused():
    """Swap the workspace slots of two a-side combinations in Winograd's materialized schedule:
    translation validation names the first step whose result is wrong, in one line."""
    f = library_algorithm("winograd")
    config = emit_torch.TorchConfig()
    plain, prog, sched = emit_torch.prepare(f, config)
    steps = list(sched.steps)
    wa = [k for k, s in enumerate(steps) if isinstance(s, Combine) and s.dst.space == "wa"]
    i, j = wa[0], wa[1]
    steps[i] = dataclasses.replace(steps[i], dst=steps[j].dst)
    steps[j] = dataclasses.replace(steps[j], dst=sched.steps[i].dst)
    broken = dataclasses.replace(sched, steps=tuple(steps))
    with pytest.raises(ValidationError) as err:
        emit_torch.emit(f, config, prepared=(plain, prog, broken))
    message = str(err.value)
    # the first wrong step is the first that reads a swapped slot (wa[0] or wa[1]), at or after i
    assert "\n" not in message and f.label() in message
    first = int(message.split(": step ")[1].split(" ")[0])
    assert i <= first <= j + 1 and "wa[" in message


def test_an_in_place_clobber_is_refused():
    """An output accumulation that reads a slot another step has just overwritten is caught."""
    f = library_algorithm("strassen")
    plain, prog, sched = emit_torch.prepare(f, emit_torch.TorchConfig())
    steps = list(sched.steps)
    k = next(k for k, s in enumerate(steps) if isinstance(s, Combine) and s.dst.space == "c" and s.accumulate)
    steps.insert(k, Combine(steps[k].terms[0].src, (Term(Ref("a", 0), Fraction(1)),), False))
    names = lambda side, i, j: emit_torch.block_name(side, i, j, f.shape)
    broken = dataclasses.replace(sched, steps=tuple(steps))
    with pytest.raises(ValidationError, match="step"):
        check_torch_ops(f.shape, prog.rank, emit_torch.render_steps(broken), f.label(), names)


@pytest.mark.parametrize("side", ["a", "c"])
def test_a_wrong_fused_table_is_refused(side):
    """Change one coefficient of Winograd's fused a-side (or output) table, or point an output at
    another block: translation validation, which runs the fused tables on residue blocks as
    executed semantics (all reads of a tile before its writes), refuses it at emission."""
    f = library_algorithm("winograd")
    config = emit_torch.TorchConfig(schedule="fused")
    plain, prog, sched = emit_torch.prepare(f, config)
    steps = list(sched.steps)
    k = next(k for k, s in enumerate(steps) if isinstance(s, Fused) and s.side == side)
    st = steps[k]
    (t0, *rest), *others = st.entries
    wrong_coef = dataclasses.replace(st, entries=((dataclasses.replace(t0, coef=t0.coef * 2), *rest), *others))
    (e0, d0, acc0), (e1, d1, acc1), *more = st.outputs
    wrong_dst = dataclasses.replace(st, outputs=((e0, d1, acc0), (e1, d0, acc1), *more))
    # a wrong coefficient is caught at the fused step itself; swapped destinations (each output's
    # intent moves with it) at the first step that reads a swapped block
    for broken_step, where in ((wrong_coef, f"step {k} "), (wrong_dst, "step ")):
        steps[k] = broken_step
        broken = dataclasses.replace(sched, steps=tuple(steps))
        with pytest.raises(ValidationError, match=f"{f.label()}.*{where}"):
            emit_torch.emit(f, config, prepared=(plain, prog, broken))


def test_fused_reads_a_tile_before_it_writes():
    """The fused output table reads c-blocks that hold products and overwrites them: validation
    runs it as one simultaneous assignment (the kernel's tile semantics), and a table that relied
    on an entry being stored before another read it would compute something else."""
    f = library_algorithm("strassen")
    _, prog, sched = emit_torch.prepare(f, emit_torch.TorchConfig(schedule="fused"))
    last = sched.steps[-1]
    assert isinstance(last, Fused) and last.side == "c"
    srcs = {t.src for terms in last.entries for t in terms}
    assert srcs & {dst for _, dst, _ in last.outputs}, "Strassen's products should be hosted in c-blocks"
    assert sched.plan.wc == prog.rank - 4 and sched.plan.scratch == 0
