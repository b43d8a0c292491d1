"""File formats: round trips, AlphaTensor's convention, hostile and broken files."""

from __future__ import annotations

import io
import json
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from compiler import load, save
from compiler.algebra.formats import FormatError, from_json, to_json
from compiler.algebra.library import laderman, strassen, winograd
from compiler.algebra.factors import Provenance


def _rational():
    f = strassen()
    return f.replace(U=np.array(f.U, dtype=object) * Fraction(1, 8), W=np.array(f.W, dtype=object) * 8,
                     name="strassen-eighths-2x2x2-r7")


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_round_trip_keeps_everything(tmp_path, suffix):
    fs = [strassen(), laderman(), _rational(), winograd().replace(field="Z2", name="w-mod2-2x2x2-r7")]
    path = save(tmp_path / f"lib{suffix}", fs)
    back = load(path)
    assert [f.digest for f in back] == [f.digest for f in fs]
    assert [f.name for f in back] == [f.name for f in fs]
    assert [f.field for f in back] == [f.field for f in fs]
    assert back[0].provenance == fs[0].provenance
    assert Fraction(1, 8) in back[2].coefficients() and not back[2].is_integral
    assert load(path, name="laderman-3x3x3-r23")[0].rank == 23


def test_fastmm_npz_loads_without_pickle(tmp_path):
    path = save(tmp_path / "lib.npz", [strassen()])
    with np.load(path, allow_pickle=False) as npz:  # must not need allow_pickle
        assert "__fastmm__" in npz.files


def test_json_is_readable(tmp_path):
    text = to_json([_rational()])
    doc = json.loads(text)
    entry = doc["factorizations"][0]
    assert entry["shape"] == [2, 2, 2] and entry["rank"] == 7
    assert "1/8" in {c for row in entry["U"] for c in row}
    assert from_json(text)[0].verify()


def test_provenance_unknown_keys_are_kept():
    p = Provenance.from_dict({"source": "x", "seed": 3})
    assert p.source == "x" and "seed=3" in p.notes


def test_alphatensor_w_is_transposed_at_the_door(alphatensor_dir, tmp_path):
    # Their file stores w for the transposed product; ours is the untransposed W. Build a file
    # in their layout from Strassen and check that it reads back as Strassen.
    f = strassen()
    n, m, p = f.shape
    w_theirs = np.asarray(f.W).reshape(n, p, -1).transpose(1, 0, 2).reshape(n * p, -1)
    arrays = np.array([np.asarray(f.U), np.asarray(f.V), w_theirs])
    np.savez(tmp_path / "factorizations_r.npz", **{"2,2,2": arrays})
    g = load(tmp_path / "factorizations_r.npz")[0]
    assert g.digest == f.digest and g.verify()


def _write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling this opens (creates) the marker file
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(3, dtype=object)
    payload[:] = [_Evil(marker), np.zeros((4, 7)), np.zeros((4, 7))]
    buf = io.BytesIO()
    np.save(buf, payload, allow_pickle=True)
    path = _write_npz(tmp_path / "factorizations_r.npz", {"2,2,2.npy": buf.getvalue()})
    with pytest.raises(FormatError, match=r"refused.*forbidden global"):
        load(path)
    assert not marker.exists(), "loading must not execute anything from the file"
    # The file really is hostile: numpy's own loader with allow_pickle=True runs it.
    with np.load(path, allow_pickle=True) as npz:
        npz["2,2,2"]
    assert marker.exists()


def test_object_arrays_in_a_fastmm_file_are_refused(tmp_path):
    path = save(tmp_path / "lib.npz", [strassen()])
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buf = io.BytesIO()
    np.save(buf, np.array([1, "x"], dtype=object), allow_pickle=True)
    members["f0.U.num.npy"] = buf.getvalue()
    bad = _write_npz(tmp_path / "bad.npz", members)
    with pytest.raises(FormatError, match="bad.npz"):
        load(bad)


@pytest.mark.parametrize("problem", ["missing", "truncated", "not_zip", "wrong_shapes", "non_numeric",
                                     "foreign", "directory", "bad_json"])
def test_broken_inputs_give_one_line_errors(tmp_path, problem):
    good = save(tmp_path / "good.npz", [strassen()])
    if problem == "missing":
        path = tmp_path / "nope.npz"
    elif problem == "truncated":
        path = tmp_path / "trunc.npz"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif problem == "not_zip":
        path = tmp_path / "text.npz"
        path.write_text("hello")
    elif problem == "wrong_shapes":
        f = strassen()
        arrays = np.array([np.asarray(f.U)[:3], np.asarray(f.V), np.asarray(f.W)], dtype=object)
        path = tmp_path / "factorizations_r.npz"
        np.savez(path, **{"2,2,2": arrays})
    elif problem == "non_numeric":
        path = tmp_path / "factorizations_r.npz"
        buf = io.BytesIO()
        np.save(buf, np.array(["a", "b", "c"]))
        _write_npz(path, {"2,2,2.npy": buf.getvalue()})
    elif problem == "foreign":
        path = tmp_path / "other.npz"
        np.savez(path, x=np.zeros(3))
    elif problem == "directory":
        path = tmp_path
    else:
        path = tmp_path / "bad.json"
        path.write_text("{not json")
    with pytest.raises(FormatError) as ei:
        load(path)
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
