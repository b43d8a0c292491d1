"""The slot-0 factor index of the symmetric walk (search.flips.valueindex): after any sequence of
row changes, syncs, removals and rebuilds it holds exactly the current rows under their keys (up
to sign over Z), and its shared list is exactly the factors held twice or more."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from search.flips.valueindex import check_index, index_rebuild, index_sync, new_index, row_bucket


@settings(max_examples=40, deadline=None)
@given(mod2=st.booleans(), seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 400), R0=st.integers(1, 60))
def test_index_tracks_rows_through_random_changes(mod2, seed, steps, R0):
    gen = np.random.default_rng(seed)
    cap = 64
    values = gen.integers(1, 6, size=12).astype(np.uint64)  # few distinct factors: many shared
    P = np.zeros((cap, 3), np.uint64)
    N = np.zeros((cap, 3), np.uint64)

    def put(row):
        v = values[gen.integers(len(values))]
        if not mod2 and gen.integers(2):  # the same factor negated: the same key
            P[row, 0], N[row, 0] = np.uint64(0), v
        else:
            P[row, 0], N[row, 0] = v, np.uint64(0)

    for row in range(cap):
        put(row)
    ix, ik = new_index(cap)
    R = R0
    index_rebuild(ix, ik, P, N, R, mod2)
    check_index(ix, ik, P, N, R, mod2)
    for _ in range(steps):
        op = gen.integers(4)
        if op <= 1:  # change a row's factor and sync it
            row = int(gen.integers(R))
            put(row)
            index_sync(ix, ik, P, N, row, R, mod2)
        elif op == 2 and R > 1:  # the last row leaves
            R -= 1
            index_sync(ix, ik, P, N, R, R, mod2)
        elif R < cap:  # a row joins
            put(R)
            R += 1
            index_sync(ix, ik, P, N, R - 1, R, mod2)
        check_index(ix, ik, P, N, R, mod2)
    for row in range(R):  # every row's bucket holds rows with its factor, up to sign
        c, base = row_bucket(ix, row)
        for q in ix[base:base + c]:
            assert (P[q, 0] | N[q, 0]) == (P[row, 0] | N[row, 0])
