"""File formats, converted at the door into the one convention (algebra layer).

- fastmm ``.npz``: any number of named factorizations of any shapes. A ``__fastmm__`` member holds
  a JSON index (names, shapes, fields, provenance); each factor is stored as two int64 arrays,
  numerators and denominators, so rationals round-trip exactly. Read with ``allow_pickle=False``.
- fastmm ``.json``: the same content, readable; coefficients are integers or ``"p/q"`` strings.
- AlphaTensor's ``factorizations_r.npz`` / ``factorizations_f2.npz``: one member per shape
  (``'4,4,4'``) holding ``[u, v, w]``. Their ``w`` indexes the transposed product
  (``T[i·m+j, j·p+k, k·n+i]``), so ``W[i·p+k] = w[k·n+i]`` here. The object arrays are read by
  ``compiler.algebra.safe_pickle``, which never executes the pickle. A file whose name contains ``f2``
  holds mod-2 schemes (field Z2).

- arbenson/fast-matmul and ternary_flip_graph text schemes: see ``compiler.algebra.formats_text``.
  ``save_as(path, fs, fmt)`` writes any of the ``FORMATS``; ``save_alphatensor`` AlphaTensor's layout.

``load(path)`` returns a list of ``Factorization``; every problem with the file is a
``FormatError`` whose message names the file and the problem in one line.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from compiler.algebra.factors import Factorization, FactorizationError, Provenance, parse_shape, to_exact
from compiler.algebra.safe_pickle import UnsafePickleError, load_object_array

FORMAT_NAME = "fastmm-factors"
FORMAT_VERSION = 1
INDEX_KEY = "__fastmm__"

ALPHATENSOR_PROVENANCE = dict(
    source="A. Fawzi et al., Discovering faster matrix multiplication algorithms with reinforcement "
           "learning, Nature 610 (2022); google-deepmind/alphatensor algorithms/ (CC-BY 4.0, DeepMind)",
    found_by="AlphaTensor (DeepMind)",
    method="reinforcement learning (AlphaTensor)",
    date="2022",
)


class FormatError(FactorizationError):
    """A factor file cannot be read: missing, truncated, malformed, unsafe or of the wrong field."""


# -- fastmm npz ---------------------------------------------------------------------------------
def _num_den(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if a.dtype != object:
        return a.astype(np.int64), np.ones(a.shape, np.int64)
    num = np.array([Fraction(x).numerator for x in a.ravel().tolist()], dtype=np.int64).reshape(a.shape)
    den = np.array([Fraction(x).denominator for x in a.ravel().tolist()], dtype=np.int64).reshape(a.shape)
    return num, den


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _entry_meta(f: Factorization) -> dict:
    return {"name": f.name, "shape": list(f.shape), "field": f.field, "rank": f.rank,
            "provenance": f.provenance.to_dict(), "digest": f.digest}


def save(path: str | os.PathLike, factorizations: Iterable[Factorization]) -> Path:
    """Write factorizations to a fastmm ``.npz`` (or ``.json`` by suffix), atomically."""
    path = Path(path)
    fs = list(factorizations)
    names = [f.label() for f in fs]
    if len(set(names)) != len(names):
        raise FormatError(f"{path}: two factorizations share a name: {sorted(n for n in names if names.count(n) > 1)}")
    if path.suffix == ".json":
        text = to_json(fs)
        _atomic_write(path, lambda fh: fh.write(text.encode()))
        return path
    arrays: dict[str, np.ndarray] = {}
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "entries": []}
    for i, f in enumerate(fs):
        key = f"f{i}"
        meta = _entry_meta(f) | {"key": key, "name": f.label()}
        index["entries"].append(meta)
        for nm, a in (("U", f.U), ("V", f.V), ("W", f.W)):
            num, den = _num_den(a)
            arrays[f"{key}.{nm}.num"] = num
            arrays[f"{key}.{nm}.den"] = den
    arrays[INDEX_KEY] = np.frombuffer(json.dumps(index, ensure_ascii=False).encode(), dtype=np.uint8)
    _atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def append(path: str | os.PathLike, factorizations: Iterable[Factorization]) -> tuple[Path, int]:
    """Add verified factorizations to a factor file (created if missing), atomically.

    Each one must verify (``require_valid``); one whose digest the file already holds is skipped;
    a name the file already has gets ``-2``, ``-3``, ... Returns the path and how many were added
    (the file is not rewritten when none is)."""
    path = Path(path)
    old = load(path) if path.exists() else []
    have = {f.digest for f in old}
    names = {f.label() for f in old}
    added = []
    for f in factorizations:
        f.require_valid()
        if f.digest in have:
            continue
        name, k = f.label(), 1
        while name in names:
            k += 1
            name = f"{f.label()}-{k}"
        f = f.replace(name=name)
        names.add(name)
        have.add(f.digest)
        added.append(f)
    if added:
        save(path, old + added)
    return path, len(added)


def _from_num_den(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    if num.shape != den.shape or num.dtype.kind not in "iu" or den.dtype.kind not in "iu":
        raise FormatError("numerator/denominator arrays disagree in shape or are not integers")
    if (den == 0).any():
        raise FormatError("zero denominator")
    if (den == 1).all():
        return num.astype(np.int64)
    out = np.empty(num.size, dtype=object)
    out[:] = [Fraction(int(a), int(b)) for a, b in zip(num.ravel().tolist(), den.ravel().tolist())]
    return out.reshape(num.shape)


def _load_fastmm_npz(npz, path: Path) -> list[Factorization]:
    try:
        index = json.loads(bytes(npz[INDEX_KEY]).decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: unreadable fastmm index ({e})") from None
    if index.get("format") != FORMAT_NAME or not isinstance(index.get("entries"), list):
        raise FormatError(f"{path}: not a fastmm factor file")
    if int(index.get("version", 0)) > FORMAT_VERSION:
        raise FormatError(f"{path}: written by a newer fastmm (format version {index['version']})")
    out = []
    for e in index["entries"]:
        k = e.get("key")
        try:
            U, V, W = (_from_num_den(npz[f"{k}.{nm}.num"], npz[f"{k}.{nm}.den"]) for nm in "UVW")
            f = Factorization(tuple(e["shape"]), U, V, W, e.get("field", "Q"), e.get("name", ""),
                              Provenance.from_dict(e.get("provenance")))
        except KeyError as ex:
            raise FormatError(f"{path}: entry {e.get('name', k)!r} lacks {ex}") from None
        except FactorizationError as ex:
            raise FormatError(f"{path}: entry {e.get('name', k)!r}: {ex}") from None
        out.append(f)
    return out


# -- JSON -----------------------------------------------------------------------------------------
def _coef_json(x) -> int | str:
    q = Fraction(x)
    return int(q) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"


def to_json(factorizations: Iterable[Factorization]) -> str:
    entries = []
    for f in factorizations:
        d = _entry_meta(f) | {"name": f.label()}
        for nm, a in (("U", f.U), ("V", f.V), ("W", f.W)):
            d[nm] = [[_coef_json(x) for x in row] for row in a.tolist()]
        entries.append(d)
    return json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "factorizations": entries}, indent=1,
                      ensure_ascii=False)


def from_json(text: str, path: Path | str = "<json>") -> list[Factorization]:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError(f"{path}: not a fastmm factor file (missing format: {FORMAT_NAME})")
    out = []
    for e in doc.get("factorizations", []):
        try:
            U, V, W = (np.array([[Fraction(str(x)) for x in row] for row in e[nm]], dtype=object)
                       if e[nm] and e[nm][0] else np.zeros((len(e[nm]), 0), np.int64) for nm in "UVW")
            out.append(Factorization(tuple(e["shape"]), U, V, W, e.get("field", "Q"), e.get("name", ""),
                                     Provenance.from_dict(e.get("provenance"))))
        except KeyError as ex:
            raise FormatError(f"{path}: entry {e.get('name', '?')!r} lacks {ex}") from None
        except (ValueError, TypeError, ZeroDivisionError) as ex:
            raise FormatError(f"{path}: entry {e.get('name', '?')!r}: {ex}") from None
    return out


# -- AlphaTensor ----------------------------------------------------------------------------------
def _read_npy_member(zf: zipfile.ZipFile, member: str, path: Path) -> np.ndarray:
    with zf.open(member) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            shape, fortran, dtype = reader[version](fh)
        except (ValueError, KeyError) as e:
            raise FormatError(f"{path}: member {member} is not a .npy array ({e})") from None
        body = fh.read()
    if dtype.hasobject:
        try:
            arr = load_object_array(body)
        except UnsafePickleError as e:
            raise FormatError(f"{path}: member {member} refused, it is not plain numeric data ({e})") from None
        if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
            raise FormatError(f"{path}: member {member} does not hold the array its header announces")
        return arr
    count = int(np.prod(shape))
    if len(body) < count * dtype.itemsize:
        raise FormatError(f"{path}: member {member} is truncated")
    return np.frombuffer(body[: count * dtype.itemsize], dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _alphatensor_entry(key: str, value: np.ndarray, field: str, path: Path) -> Factorization:
    n, m, p = parse_shape(key)
    try:
        u, v, w = (np.asarray(value[i]) for i in range(3))
    except (IndexError, TypeError):
        raise FormatError(f"{path}: entry {key} does not hold [u, v, w]") from None
    if u.ndim != 2 or v.ndim != 2 or w.ndim != 2 or w.shape[0] != n * p:
        raise FormatError(f"{path}: entry {key}: factor shapes {u.shape}, {v.shape}, {w.shape} do not fit <{n},{m},{p}>")
    R = w.shape[1]
    # Their w is indexed by (k, i) of the transposed product; ours by (i, k): W[i·p+k] = w[k·n+i].
    W = w.reshape(p, n, R).transpose(1, 0, 2).reshape(n * p, R)
    try:
        return Factorization((n, m, p), to_exact(u), to_exact(v), to_exact(W), field,
                             f"alphatensor-{n}x{m}x{p}-r{R}{'-mod2' if field == 'Z2' else ''}",
                             Provenance(**ALPHATENSOR_PROVENANCE, notes=f"read from {path.name}"))
    except FactorizationError as e:
        raise FormatError(f"{path}: entry {key}: {e}") from None


def _load_alphatensor(zf: zipfile.ZipFile, path: Path) -> list[Factorization]:
    field = "Z2" if "f2" in path.name.lower() else "Q"
    out = []
    for member in zf.namelist():
        key = member[:-4] if member.endswith(".npy") else member
        out.append(_alphatensor_entry(key, _read_npy_member(zf, member, path), field, path))
    return out


def _dyadic_float(a: np.ndarray, fmt: str) -> np.ndarray:
    if a.dtype != object:
        return a.astype(np.int64)
    qs = [Fraction(x) for x in a.ravel().tolist()]
    for q in qs:
        d = q.denominator
        if d & (d - 1) or d > 2**20 or abs(q.numerator) >= 2**52:
            raise FormatError(f"the {fmt} format stores coefficients as float64; {q} is not an exact dyadic rational")
    return np.array([float(q) for q in qs], dtype=np.float64).reshape(a.shape)


def save_alphatensor(path: str | os.PathLike, factorizations: Iterable[Factorization]) -> Path:
    """Write AlphaTensor's layout: one member per shape ('4,4,4') holding [u, v, w], their w
    transposed back (``w[k·n+i] = W[i·p+k]``). One scheme per shape; a mod-2 scheme goes only to a
    file whose name contains ``f2`` (that is how the reader tells the field), a real one only elsewhere."""
    path = Path(path)
    mod2_file = "f2" in path.name.lower()
    arrays: dict[str, np.ndarray] = {}
    for f in factorizations:
        if (f.field == "Z2") != mod2_file:
            raise FormatError(f"{path}: {f.label()} is field {f.field}; AlphaTensor files tell the field by name "
                              f"(mod-2 schemes go to a name containing 'f2', real ones elsewhere)")
        n, m, p = f.shape
        key = f"{n},{m},{p}"
        if key in arrays:
            raise FormatError(f"{path}: AlphaTensor files hold one scheme per shape; two for {key}")
        R = f.rank
        W = np.asarray(f.W)
        w = W.reshape(n, p, R).transpose(1, 0, 2).reshape(p * n, R)
        parts = [_dyadic_float(np.asarray(x), "AlphaTensor") for x in (f.U, f.V, w)]
        if any(x.dtype.kind == "f" for x in parts):
            parts = [x.astype(np.float64) for x in parts]
        value = np.empty(3, dtype=object)
        value[:] = parts
        arrays[key] = value
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))
    return path


def _is_alphatensor_key(member: str) -> bool:
    key = member[:-4] if member.endswith(".npy") else member
    parts = key.split(",")
    return len(parts) == 3 and all(x.isdigit() for x in parts)


# -- the door -------------------------------------------------------------------------------------
# Formats by name; ``detect_format`` picks one from the suffix, then from the content.
FORMATS = ("fastmm-npz", "json", "alphatensor-npz", "fast-matmul", "flip-graph", "fmm-maple")


def detect_format(path: str | os.PathLike) -> str:
    """The format of an existing file: zip archives are npz; text by suffix, else by its first token."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                members = zf.namelist()
        except zipfile.BadZipFile:
            raise FormatError(f"{path}: not a readable .npz (zip) file: truncated or corrupt") from None
        return "fastmm-npz" if f"{INDEX_KEY}.npy" in members else "alphatensor-npz"
    if path.suffix == ".npz":
        raise FormatError(f"{path}: not a readable .npz (zip) file: truncated or corrupt")
    if path.suffix == ".json" or head.lstrip().startswith(b"{"):
        return "json"
    text = head.lstrip()
    if path.suffix == ".mpl" or text.startswith(b"Tensor"):
        return "fmm-maple"
    if text.startswith(b"#") or path.suffix == ".fmm":
        return "fast-matmul"
    first = text.split(b"\n", 1)[0].split()
    if len(first) == 4 and all(t.isdigit() for t in first):
        return "flip-graph"
    if first and all(t.lstrip(b"-").replace(b".", b"").replace(b"/", b"").isdigit() for t in first):
        return "fast-matmul"
    raise FormatError(f"{path}: unknown factor format (not npz, fastmm JSON, fast-matmul or flip-graph text)")


def format_for_output(path: str | os.PathLike) -> str:
    """The format a new file of this name gets: by suffix (.npz with 'alphatensor' or 'factorizations_'
    in the name is AlphaTensor's layout; .json; .fmm fast-matmul; .txt flip-graph)."""
    path = Path(path)
    low = path.name.lower()
    if path.suffix == ".npz":
        return "alphatensor-npz" if ("alphatensor" in low or low.startswith("factorizations_")) else "fastmm-npz"
    by_suffix = {".json": "json", ".fmm": "fast-matmul", ".txt": "flip-graph", ".mpl": "fmm-maple"}
    if path.suffix in by_suffix:
        return by_suffix[path.suffix]
    raise FormatError(f"{path}: cannot tell the format from the name; pass one of {', '.join(FORMATS)}")


def save_as(path: str | os.PathLike, factorizations: Iterable[Factorization], fmt: str | None = None) -> Path:
    """Write in any format (``fmt`` or from the name). Single-scheme text formats refuse several."""
    from compiler.algebra import formats_text as ft
    path = Path(path)
    fmt = fmt or format_for_output(path)
    fs = list(factorizations)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "alphatensor-npz":
        return save_alphatensor(path, fs)
    if fmt in ("fast-matmul", "flip-graph", "fmm-maple"):
        if len(fs) != 1:
            raise FormatError(f"{path}: the {fmt} format holds one scheme, got {len(fs)}; pick one with --key")
        try:
            text = {"fast-matmul": ft.to_fast_matmul, "flip-graph": ft.to_flip_graph,
                    "fmm-maple": ft.to_fmm_maple}[fmt](fs[0])
        except FactorizationError as e:
            raise FormatError(f"{path}: {e}") from None
        _atomic_write(path, lambda fh: fh.write(text.encode()))
        return path
    if fmt == "json":
        text = to_json(fs)
        _atomic_write(path, lambda fh: fh.write(text.encode()))
        return path
    if path.suffix == ".json":
        raise FormatError(f"{path}: a fastmm npz file must not be named .json (that name means fastmm JSON)")
    return save(path, fs)


def load(path: str | os.PathLike, name: str | None = None, fmt: str | None = None,
         shape: tuple[int, int, int] | None = None) -> list[Factorization]:
    """All factorizations in ``path``, in any format of ``FORMATS`` (``fmt``, or detected from the
    suffix and content); ``name`` selects by name, or by shape '4,4,4'. ``shape`` is needed for a
    fast-matmul file whose name does not say it (``grey322-11-50`` does)."""
    from compiler.algebra import formats_text as ft
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, not a factor file")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt in ("fast-matmul", "flip-graph", "fmm-maple"):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise FormatError(f"{path}: not a text file") from None
        try:
            if fmt == "fast-matmul":
                fs = [ft.from_fast_matmul(text, shape or ft.shape_from_fast_matmul_name(path.name), str(path))]
            elif fmt == "fmm-maple":
                fs = [ft.from_fmm_maple(text, str(path))]
            else:
                fs = [ft.from_flip_graph(text, str(path))]
        except FactorizationError as e:
            raise FormatError(str(e)) from None
    elif fmt == "json":
        fs = from_json(path.read_text(errors="replace"), path)
    else:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise FormatError(f"{path}: not a readable .npz (zip) file: truncated or corrupt") from None
        except OSError as e:
            raise FormatError(f"{path}: cannot read ({e.strerror})") from None
        try:
            with zf:
                members = zf.namelist()
                if f"{INDEX_KEY}.npy" in members:
                    try:
                        with np.load(path, allow_pickle=False) as npz:
                            fs = _load_fastmm_npz(npz, path)
                    except ValueError as e:
                        raise FormatError(f"{path}: {e}") from None
                elif members and all(_is_alphatensor_key(m) for m in members):
                    fs = _load_alphatensor(zf, path)
                else:
                    raise FormatError(f"{path}: neither a fastmm nor an AlphaTensor factor file "
                                      f"(members: {', '.join(members[:4])}{'…' if len(members) > 4 else ''})")
        except (zipfile.BadZipFile, EOFError, zlib_error()) as e:
            raise FormatError(f"{path}: truncated or corrupt archive ({e})") from None
    if name is not None:
        want = [f for f in fs if f.name == name or ",".join(map(str, f.shape)) == name.replace("x", ",")]
        if not want:
            raise FormatError(f"{path}: no factorization named {name!r} "
                              f"(has: {', '.join(f.label() for f in fs[:8])}{'…' if len(fs) > 8 else ''})")
        return want
    return fs


def zlib_error():
    import zlib
    return zlib.error
