"""Read the numpy object arrays inside AlphaTensor's ``.npz`` files without running the pickle.

``np.load(..., allow_pickle=True)`` executes whatever callables a pickle names. This module does
not unpickle at all: it decodes the opcode stream with ``pickletools.genops`` (a pure parser) and
interprets a small subset of opcodes itself. The only globals it recognises are the three that a
numpy array pickle names (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
``numpy.dtype``), and it never calls them: it builds the arrays from their raw bytes with
``np.frombuffer``. Any other global, opcode or dtype is refused with ``UnsafePickleError``.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field

import numpy as np


class UnsafePickleError(ValueError):
    """The pickle asks for something other than plain numeric numpy arrays."""


_RECONSTRUCT = ("numpy.core.multiarray", "_reconstruct")
_RECONSTRUCT2 = ("numpy._core.multiarray", "_reconstruct")
_NDARRAY = ("numpy", "ndarray")
_DTYPE = ("numpy", "dtype")
_ALLOWED_GLOBALS = {_RECONSTRUCT, _RECONSTRUCT2, _NDARRAY, _DTYPE}
_NUMERIC_DTYPES = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "b1", "O8"}


@dataclass
class _Global:
    module: str
    name: str


@dataclass
class _ArrayStub:
    state: tuple | None = None


@dataclass
class _DType:
    code: str
    byteorder: str = "|"


@dataclass
class _Mark:
    pass


_MARK = _Mark()


@dataclass
class _Stack:
    items: list = field(default_factory=list)

    def pop_mark(self) -> list:
        for i in range(len(self.items) - 1, -1, -1):
            if self.items[i] is _MARK:
                out = self.items[i + 1:]
                del self.items[i:]
                return out
        raise UnsafePickleError("unbalanced MARK in pickle")


def load_object_array(data: bytes) -> object:
    """Interpret a numpy-array pickle; returns an ndarray (object arrays hold ndarrays)."""
    st = _Stack()
    memo: dict[int, object] = {}
    s = st.items
    try:
        ops = list(pickletools.genops(data))
    except Exception as e:  # malformed stream: a parse error, never execution
        raise UnsafePickleError(f"malformed pickle: {e}") from None
    for op, arg, _pos in ops:
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name == "GLOBAL":
            mod, _, attr = arg.partition(" ")
            if (mod, attr) not in _ALLOWED_GLOBALS:
                raise UnsafePickleError(f"pickle names a forbidden global {mod}.{attr}")
            s.append(_Global(mod, attr))
        elif name == "STACK_GLOBAL":
            attr, mod = s.pop(), s.pop()
            if (mod, attr) not in _ALLOWED_GLOBALS:
                raise UnsafePickleError(f"pickle names a forbidden global {mod}.{attr}")
            s.append(_Global(mod, attr))
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = s[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = s[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            s.append(memo[int(arg)])
        elif name == "MARK":
            s.append(_MARK)
        elif name == "TUPLE":
            s.append(tuple(st.pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            k = int(name[-1])
            items = s[-k:]
            del s[-k:]
            s.append(tuple(items))
        elif name == "EMPTY_TUPLE":
            s.append(())
        elif name == "EMPTY_LIST":
            s.append([])
        elif name == "LIST":
            s.append(list(st.pop_mark()))
        elif name == "APPEND":
            v = s.pop()
            s[-1].append(v)
        elif name == "APPENDS":
            vals = st.pop_mark()
            s[-1].extend(vals)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "INT",
                      "BINFLOAT", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "SHORT_BINUNICODE",
                      "BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING"):
            s.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}.get(name, arg))
        elif name == "REDUCE":
            args, fn = s.pop(), s.pop()
            if not isinstance(fn, _Global) or not isinstance(args, tuple):
                raise UnsafePickleError("REDUCE on something that is not an allowed numpy global")
            key = (fn.module, fn.name)
            if key in (_RECONSTRUCT, _RECONSTRUCT2):
                if not args or not (isinstance(args[0], _Global) and (args[0].module, args[0].name) == _NDARRAY):
                    raise UnsafePickleError("_reconstruct of something other than numpy.ndarray")
                s.append(_ArrayStub())
            elif key == _DTYPE:
                code = args[0] if args else None
                if code not in _NUMERIC_DTYPES:
                    raise UnsafePickleError(f"dtype {code!r} is not a plain numeric dtype")
                s.append(_DType(code))
            else:
                raise UnsafePickleError(f"REDUCE on {fn.module}.{fn.name} is not allowed")
        elif name == "BUILD":
            state, obj = s.pop(), s[-1]
            if isinstance(obj, _DType):
                if not isinstance(state, tuple) or len(state) < 2 or state[1] not in "<>|=":
                    raise UnsafePickleError("unexpected dtype state")
                obj.byteorder = state[1]
            elif isinstance(obj, _ArrayStub):
                s[-1] = _build_array(state)
            else:
                raise UnsafePickleError("BUILD on an object that is not an array or dtype")
        else:
            raise UnsafePickleError(f"pickle opcode {name} is not allowed")
    if len(s) != 1:
        raise UnsafePickleError("pickle did not leave exactly one object")
    return s[0]


def _build_array(state: object) -> np.ndarray:
    if not (isinstance(state, tuple) and len(state) == 5):
        raise UnsafePickleError("unexpected ndarray state")
    _version, shape, dt, fortran, payload = state
    if not isinstance(dt, _DType) or not isinstance(shape, tuple) or not all(isinstance(x, int) for x in shape):
        raise UnsafePickleError("unexpected ndarray shape or dtype")
    count = int(np.prod(shape)) if shape else 1
    if dt.code == "O8":
        if not isinstance(payload, list) or len(payload) != count:
            raise UnsafePickleError("object array payload is not a list of the right length")
        out = np.empty(count, dtype=object)
        for i, v in enumerate(payload):
            if not isinstance(v, (np.ndarray, int, float)) or isinstance(v, bool):
                raise UnsafePickleError(f"object array holds a {type(v).__name__}")
            out[i] = v
        return out.reshape(shape, order="F" if fortran else "C")
    if not isinstance(payload, (bytes, bytearray)):
        raise UnsafePickleError("numeric array payload is not bytes")
    dtype = np.dtype(dt.code).newbyteorder(dt.byteorder if dt.byteorder in "<>" else "=")
    if len(payload) != count * dtype.itemsize:
        raise UnsafePickleError("array payload has the wrong length")
    return np.frombuffer(bytes(payload), dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
