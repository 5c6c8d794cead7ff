"""Element values <-> numpy arrays, JSON (REST_API.md §12.3) and bytes (§12.4,
STORAGE.md §6.3/§6.4).

Pure functions, no server state; every invalid input raises BadRequest.

Array conventions (see types.py):

* the array for ``shape`` elements of type t has dtype ``dtype_of(t)`` and
  shape ``shape`` -- except for a top-level H5T_ARRAY type, where numpy
  expands the subarray: shape ``shape + dims``, dtype = the base dtype
  (``types.full_shape``);
* variable-length strings: object elements, ``str`` (UTF-8) or ``bytes``
  (ASCII); vlen sequences: object elements holding 1-D ndarrays of the base
  dtype; region references: object elements holding raw ``bytes``;
* in object elements ``None`` or the integer ``0`` mean "never written"
  (JSON ``0``, binary ``00 00 00 00``; §11.8).

Fixed-size numeric types never go through per-element Python code.
"""
import base64
import binascii
import json
import math
import struct

import numpy as np

from server.core.errors import BadRequest
from server.core.types import type_info

MAX_VLEN_ITEM = 1_000_000            # bytes of one variable-length item (§12.4)
_ZERO_PREFIX = b"\x00\x00\x00\x00"
# Between our own processes an unwritten variable-length element travels as length -1,
# so it still reads as 0 (§11.8) until the chunk reaches storage (where it is empty).
_UNWRITTEN_PREFIX = b"\xff\xff\xff\xff"
_PREFIX = struct.Struct("<i")
_CONVERT_ERRORS = (ValueError, TypeError, OverflowError)
_SCALAR_KINDS = ("int", "float", "enum", "bool", "fstr", "vstr", "ref", "regref", "opaque")


def _unwritten(e) -> bool:
    """An object element that was never written: None or the integer 0."""
    return e is None or (isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                         and e == 0)


def _shape_tuple(count_or_shape) -> tuple:
    if isinstance(count_or_shape, (int, np.integer)):
        return (int(count_or_shape),)
    return tuple(int(d) for d in count_or_shape)


# ============================================================================
# JSON -> numpy
# ============================================================================

def concat(parts: list) -> np.ndarray:
    """Arrays of one dtype joined along their first axis. Fixed-size items are joined
    as bytes: numpy joins compound items field by field (measured 2-3 ms for 1.2 MB of
    query rows, 0.3-1.4 ms as bytes)."""
    first = parts[0]
    if first.dtype.hasobject:
        return np.concatenate(parts)
    out = np.empty((sum(len(p) for p in parts),) + first.shape[1:], first.dtype)
    np.concatenate([np.ascontiguousarray(p).reshape(-1).view(np.uint8) for p in parts],
                   out=out.reshape(-1).view(np.uint8))
    return out


def from_json(value, t, shape) -> np.ndarray:
    """Convert a JSON value for `shape` elements of type t (§12.3) to an array.

    The result has dtype dtype_of(t) and shape `shape` (shape + dims for a
    top-level array type).  Element counts must match; the nesting may
    differ.  A one-element compound accepts the bare field list."""
    info = type_info(t)
    shape = _shape_tuple(shape)
    if isinstance(value, np.ndarray) and info.kind not in ("int", "float", "enum", "bool"):
        value = value.tolist()
    if info.kind == "array":
        return _scalar_values(value, info.base, shape + info.dims)
    if info.kind in ("compound", "vlen"):
        elems = _elements(value, shape, info)
        return _convert_elems(elems, info).reshape(shape)
    return _scalar_values(value, info, shape)


def _flatten(value) -> list:
    """All non-list leaves of a nested list, in order (a non-list -> [value])."""
    if not isinstance(value, (list, tuple)):
        return [value]
    out = []
    stack = [iter(value)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, (list, tuple)):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _count_error(got, want):
    return BadRequest(f"value has {got} elements, expected {want}")


def _numeric(value, dtype, shape):
    count = math.prod(shape)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.array(value, dtype=dtype)
    except _CONVERT_ERRORS as e:
        if not isinstance(value, (list, tuple)):
            raise BadRequest(f"invalid value for {dtype}: {e}")
        try:         # ragged nesting is fine as long as the count matches
            with np.errstate(over="ignore", invalid="ignore"):
                arr = np.array(_flatten(value), dtype=dtype)
        except _CONVERT_ERRORS as e2:
            raise BadRequest(f"invalid value for {dtype}: {e2}")
    if arr.size != count:
        raise _count_error(arr.size, count)
    if arr.shape != shape:
        arr = arr.reshape(shape)
    return arr


def _bools(value, shape):
    count = math.prod(shape)
    try:
        arr = np.array(value)
    except _CONVERT_ERRORS:
        arr = None
    if arr is None or arr.dtype.kind == "O":
        arr = np.array(_flatten(value))
    if arr.size != count:
        raise _count_error(arr.size, count)
    if arr.dtype.kind in "iuf" and arr.size:
        if not np.all((arr == 0) | (arr == 1)):
            raise BadRequest("boolean values must be true/false or 0/1")
        arr = arr.astype(np.bool_)
    elif arr.dtype.kind != "b":
        if arr.size:
            raise BadRequest("boolean values must be true/false or 0/1")
        arr = arr.astype(np.bool_)
    return arr.reshape(shape)


def _scalar_values(value, info, shape):
    """Elements that are not lists in JSON (numbers, strings, ...)."""
    kind = info.kind
    if kind in ("int", "float", "enum"):
        return _numeric(value, info.dtype, shape)
    if kind == "bool":
        return _bools(value, shape)
    flat = _flatten(value)
    count = math.prod(shape)
    if len(flat) != count:
        raise _count_error(len(flat), count)
    return _FLAT_CONVERTERS[kind](flat, info).reshape(shape)


def _fstr_flat(flat, info):
    enc = []
    for v in flat:
        if isinstance(v, str):
            enc.append(v.encode("utf-8"))
        elif isinstance(v, bytes):
            enc.append(v)
        else:
            raise BadRequest(f"string value expected, got {type(v).__name__}")
    # numpy NUL-pads and silently truncates to the length (§12.3)
    return np.array(enc, dtype=info.dtype) if enc else np.empty(0, info.dtype)


def _vstr_item(v, utf8):
    if isinstance(v, str):
        if len(v) > MAX_VLEN_ITEM // 4 and len(v.encode("utf-8")) > MAX_VLEN_ITEM:
            raise BadRequest("variable-length item larger than 1000000 bytes")
        return v if utf8 else v.encode("utf-8")
    if isinstance(v, bytes):
        if len(v) > MAX_VLEN_ITEM:
            raise BadRequest("variable-length item larger than 1000000 bytes")
        if not utf8:
            return v
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("invalid UTF-8 in string value")
    raise BadRequest(f"string value expected, got {type(v).__name__}")


def _vstr_flat(flat, info):
    out = np.empty(len(flat), dtype=info.dtype)
    utf8 = info.utf8
    out[:] = [_vstr_item(v, utf8) for v in flat]
    return out


def _ref_flat(flat, info):
    enc = []
    for v in flat:
        if isinstance(v, bytes):
            b = v
        elif isinstance(v, str):
            try:
                b = v.encode("ascii")
            except UnicodeEncodeError:
                raise BadRequest(f"invalid reference {v!r}")
        else:
            raise BadRequest("reference values must be strings")
        if len(b) > info.length:
            raise BadRequest(f"reference {v!r} longer than {info.length} bytes")
        enc.append(b)
    return np.array(enc, dtype=info.dtype) if enc else np.empty(0, info.dtype)


def _regref_flat(flat, info):
    out = np.empty(len(flat), dtype=info.dtype)
    items = []
    for v in flat:
        if isinstance(v, str):
            v = v.encode("utf-8")
        elif isinstance(v, dict):     # h5pyd 1.0's form: {"id", "select_type", "selection"}
            v = json.dumps(v).encode("utf-8")
        elif not isinstance(v, bytes):
            raise BadRequest("region reference values must be strings or objects")
        if len(v) > MAX_VLEN_ITEM:
            raise BadRequest("variable-length item larger than 1000000 bytes")
        items.append(v)
    out[:] = items
    return out


def _opaque_flat(flat, info):
    parts = []
    for v in flat:
        if isinstance(v, str):
            try:
                v = base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("opaque values must be base64 strings")
        elif not isinstance(v, bytes):
            raise BadRequest("opaque values must be base64 strings")
        if len(v) != info.size:
            raise BadRequest(f"opaque value must be {info.size} bytes")
        parts.append(v)
    return np.frombuffer(b"".join(parts), dtype=info.dtype).copy()


_FLAT_CONVERTERS = {
    "fstr": _fstr_flat,
    "vstr": _vstr_flat,
    "ref": _ref_flat,
    "regref": _regref_flat,
    "opaque": _opaque_flat,
}


def _descend(value, depth):
    """The items `depth` list levels down, or None if the nesting is shallower."""
    items = [value]
    for _ in range(depth):
        nxt = []
        for v in items:
            if not isinstance(v, (list, tuple)):
                return None
            nxt.extend(v)
        items = nxt
    return items


def _elements(value, shape, info):
    """Split a JSON value into the elements of a list-valued type (compound,
    vlen sequence).  Tries the nesting of `shape`, then a flat list of
    elements, then (one element only) the value itself as the element."""
    n = math.prod(shape)
    if info.kind == "compound":
        nf = len(info.fields)

        def is_elem(v):
            return isinstance(v, (list, tuple)) and len(v) == nf
    else:
        def is_elem(v):
            return isinstance(v, (list, tuple))
    elems = _descend(value, len(shape))
    if elems is not None and len(elems) == n and all(is_elem(v) for v in elems):
        return elems
    if isinstance(value, (list, tuple)) and len(value) == n and all(is_elem(v) for v in value):
        return list(value)
    if n == 1 and is_elem(value):
        return [value]
    if info.kind == "compound" and not isinstance(value, (list, tuple)):
        raise BadRequest("a compound value must be a list of field values")
    raise BadRequest(f"value does not hold {n} elements of the type")


def _convert_elems(elems, info):
    """n JSON elements -> array of shape (n,) (+ dims for array types)."""
    n = len(elems)
    kind = info.kind
    if kind == "array":
        return _scalar_values(elems, info.base, (n,) + info.dims)
    if kind in _SCALAR_KINDS:
        return _scalar_values(elems, info, (n,))
    if kind == "compound":
        nf = len(info.fields)
        for e in elems:
            if not isinstance(e, (list, tuple)) or len(e) != nf:
                raise BadRequest(f"a compound element must be a list of {nf} field values")
        out = np.empty(n, dtype=info.dtype)
        columns = list(zip(*elems)) if n else [()] * nf
        for (name, finfo), col in zip(info.fields, columns):
            out[name] = _convert_elems(list(col), finfo)
        return out
    if kind == "vlen":
        # a variable-length base (vlen strings, compounds with vlen fields, vlen of
        # vlen) recurses: each sequence is an object/structured array of the base
        base = info.base
        out = np.empty(n, dtype=info.dtype)
        for i, e in enumerate(elems):
            if isinstance(e, np.ndarray):
                e = e.tolist()
            if not isinstance(e, (list, tuple)):
                raise BadRequest("a vlen element must be a list")
            if base.kind in _SCALAR_KINDS:
                flat = _flatten(e)
                seq = _scalar_values(flat, base, (len(flat),))
            else:
                seq = _convert_elems(list(e), base)
            if not base.variable and seq.nbytes > MAX_VLEN_ITEM:
                raise BadRequest("variable-length item larger than 1000000 bytes")
            out[i] = seq
        return out
    raise BadRequest(f"unsupported type kind {kind}")


# ============================================================================
# numpy -> JSON
# ============================================================================

def to_json(arr, t, ignore_nan=False):
    """JSON form (§12.3) of an array of type t: nested lists shaped like arr,
    a bare value for a 0-d array.  NaN stays float('nan') unless ignore_nan
    (-> None).  Unwritten variable-length elements -> 0 (§11.8)."""
    info = type_info(t)
    arr = np.asarray(arr)
    if info.kind == "array":
        info = info.base
    kind = info.kind
    if kind in ("int", "enum"):
        return arr.tolist()
    if kind == "float":
        return _floats_json(arr, ignore_nan)
    if kind == "bool":
        return (arr if arr.dtype == np.bool_ else arr.astype(np.bool_)).tolist()
    if kind in ("fstr", "ref"):
        return _decode_strings(arr)
    flat = arr.reshape(-1)
    if kind == "compound":
        n = flat.shape[0]
        cols = [to_json(flat[name], finfo, ignore_nan) for name, finfo in info.fields]
        items = [list(row) for row in zip(*cols)] if n else []
    elif kind == "vstr":
        items = [_vstr_json(e) for e in flat]
    elif kind == "regref":
        items = [_regref_json(e) for e in flat]
    elif kind == "vlen":
        base = info.base
        items = [0 if _unwritten(e) else _vlen_json(e, base, ignore_nan) for e in flat]
    elif kind == "opaque":
        size = info.size
        data = np.ascontiguousarray(flat).tobytes()
        items = [base64.b64encode(data[i:i + size]).decode("ascii")
                 for i in range(0, len(data), size)]
    else:
        raise BadRequest(f"unsupported type kind {kind}")
    return _nest(items, arr.shape)


def _floats_json(arr, ignore_nan):
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if ignore_nan:
        nan = np.isnan(arr)
        if nan.any():
            obj = arr.astype(object)
            obj[nan] = None
            return obj.tolist()
    return arr.tolist()


def _decode_strings(arr):
    try:
        return np.char.decode(arr, "utf-8").tolist()
    except UnicodeDecodeError:
        raise BadRequest("string value is not valid UTF-8; use binary transfer")


def _vstr_json(e):
    if isinstance(e, str):
        return e if type(e) is str else str(e)
    if isinstance(e, (bytes, np.bytes_)):
        try:
            return bytes(e).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("string value is not valid UTF-8; use binary transfer")
    if _unwritten(e):
        return 0
    raise BadRequest(f"invalid variable-length string element {type(e).__name__}")


def _regref_json(e):
    if _unwritten(e):
        return ""
    if isinstance(e, str):
        return e if type(e) is str else str(e)
    try:
        return bytes(e).decode("utf-8")
    except (UnicodeDecodeError, TypeError):
        raise BadRequest("region reference has no JSON form; use binary transfer")


def _vlen_json(e, base, ignore_nan):
    seq = e if isinstance(e, np.ndarray) else np.asarray(e, dtype=base.dtype)
    result = to_json(seq, base, ignore_nan)
    return result if isinstance(result, list) else [result]


def _nest(items, shape):
    """Re-nest a flat list of per-element JSON values to `shape`."""
    if len(shape) == 0:
        return items[0]
    if len(shape) == 1:
        return items
    if 0 in shape:
        return np.empty(shape, dtype=np.int8).tolist()
    for d in reversed(shape[1:]):
        items = [items[i:i + d] for i in range(0, len(items), d)]
    return items


# ============================================================================
# numpy <-> bytes
# ============================================================================

def as_buffer(arr, t, internal=True):
    """Like to_bytes, but for fixed-size types a zero-copy byte view of the array
    (copied only when not C-contiguous): for sending and storing, never for keeping."""
    if type_info(t).variable:
        return to_bytes(arr, t, wire=False, internal=internal)
    arr = np.ascontiguousarray(arr)
    return memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b""


def to_bytes(arr, t, wire=True, internal=False) -> bytes:
    """Binary form of an array of type t.

    Fixed-size types: C-order element bytes (§12.4, STORAGE.md §6.3).
    Variable-length types: per element, int32 LE byte-count + payload for
    every variable-length item (§12.4, STORAGE.md §6.4).  With wire=True the
    HSDS quirk is reproduced: 4 zero bytes per array-of-vlen value (per
    element, per such field) appended at the end; wire=False (chunk
    storage) has no padding. internal=True (SN <-> DN only) keeps unwritten
    variable-length elements apart from empty ones (length -1)."""
    info = type_info(t)
    arr = np.asarray(arr)
    if not info.variable:
        dt = info.elem_dtype
        if arr.dtype != dt:
            try:
                arr = arr.astype(dt)
            except _CONVERT_ERRORS as e:
                raise BadRequest(f"cannot convert data to {dt}: {e}")
        return arr.tobytes()
    ndim = arr.ndim - len(info.dims)
    if ndim < 0 or arr.shape[ndim:] != info.dims:
        raise BadRequest("array shape does not match the type's dims")
    n = math.prod(arr.shape[:ndim])
    flat = arr.reshape((n,) + info.dims)
    parts, pads = _encode(flat, info, _UNWRITTEN_PREFIX if internal else _ZERO_PREFIX)
    data = b"".join(parts)
    if wire and pads:
        data += bytes(4 * pads)
    return data


def _prefixed(payload: bytes) -> bytes:
    return _PREFIX.pack(len(payload)) + payload


def _encode_vstr(e, unwritten=_ZERO_PREFIX) -> bytes:
    if _unwritten(e):
        return unwritten
    if isinstance(e, str):
        return _prefixed(e.encode("utf-8"))
    if isinstance(e, (bytes, np.bytes_)):
        return _prefixed(bytes(e))
    raise BadRequest(f"invalid variable-length string element {type(e).__name__}")


def _encode(col, info, unwritten=_ZERO_PREFIX):
    """Per-element bytes of col (shape (n,) + info.dims) and the number of
    array-of-vlen values met (for the wire padding quirk)."""
    n = col.shape[0]
    kind = info.kind
    if not info.variable:
        a = col if col.dtype == info.elem_dtype else col.astype(info.elem_dtype)
        data = a.tobytes()
        size = info.dtype.itemsize
        return [data[i * size:(i + 1) * size] for i in range(n)], 0
    if kind in ("vstr", "regref"):
        return [_encode_vstr(e, unwritten) for e in col], 0
    if kind == "array":          # array of variable-length strings
        k = math.prod(info.dims)
        items = [_encode_vstr(e, unwritten) for e in col.reshape(-1)]
        return [b"".join(items[i * k:(i + 1) * k]) for i in range(n)], n
    if kind == "compound":
        cols, pads = [], 0
        for name, finfo in info.fields:
            parts, p = _encode(col[name], finfo, unwritten)
            cols.append(parts)
            pads += p
        return [b"".join(row) for row in zip(*cols)] if n else [], pads
    if kind == "vlen":
        base = info.base
        out, pads = [], 0
        for e in col:
            if _unwritten(e):
                out.append(unwritten)
                continue
            seq = np.asarray(e)
            if base.variable:
                seq = seq.reshape((-1,) + base.dims)
                parts, p = _encode(seq, base, unwritten)
                pads += p
                out.append(_prefixed(b"".join(parts)))
                continue
            if seq.dtype != base.elem_dtype:
                try:
                    seq = seq.astype(base.elem_dtype)
                except _CONVERT_ERRORS as err:
                    raise BadRequest(f"invalid vlen element: {err}")
            out.append(_prefixed(seq.tobytes()))
        return out, pads
    raise BadRequest(f"unsupported type kind {kind}")


def from_bytes(data, t, count_or_shape, writable=False, internal=False) -> np.ndarray:
    """Decode the binary form of `count_or_shape` elements of type t.

    Fixed-size types: len(data) must be exactly itemsize x count (else
    BadRequest).  The result is a zero-copy ``numpy.frombuffer`` view, hence
    READ-ONLY when data is immutable (bytes); pass writable=True to get a
    writable array (copied only when the view is read-only).

    Variable-length types: decoded element by element for exactly that many
    elements; trailing bytes are ignored (the §12.4 wire padding); too short
    or an item > 1,000,000 bytes -> BadRequest.  The result is always a new
    writable array."""
    info = type_info(t)
    shape = _shape_tuple(count_or_shape)
    n = math.prod(shape)
    full = shape + info.dims
    if not info.variable:
        size = info.dtype.itemsize
        if len(data) != n * size:
            raise BadRequest(f"binary data has {len(data)} bytes, expected "
                             f"{n * size} ({n} x {size})")
        arr = np.frombuffer(data, dtype=info.elem_dtype).reshape(full)
        if writable and not arr.flags.writeable:
            arr = arr.copy()
        return arr
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    reader = _reader(info)
    reader_flag(reader, internal)
    pos = 0
    read = reader.read
    for _ in range(n):
        pos = read(mv, pos)
    return reader.finish(n).reshape(full)


def _short():
    return BadRequest("binary data too short for the number of elements")


def reader_flag(reader, internal: bool):
    """Let every reader in the tree accept length -1 (unwritten) when internal."""
    reader.internal = internal
    for sub in (getattr(reader, "item", None), getattr(reader, "base_reader", None)):
        if sub is not None:
            reader_flag(sub, internal)
    for _, sub in getattr(reader, "fields", ()):
        reader_flag(sub, internal)


def _read_prefix(mv, pos, internal=False):
    """(start, end) of the item after the length prefix at pos; (None, pos + 4) for an
    unwritten element (length -1, internal transfers only)."""
    if pos + 4 > len(mv):
        raise _short()
    (size,) = _PREFIX.unpack_from(mv, pos)
    if size == -1 and internal:
        return None, pos + 4
    if size < 0 or size > MAX_VLEN_ITEM:
        raise BadRequest(f"invalid variable-length item size {size}")
    end = pos + 4 + size
    if end > len(mv):
        raise _short()
    return pos + 4, end


class _FixedReader:
    internal = False
    def __init__(self, info):
        self.info = info
        self.size = info.dtype.itemsize
        self.parts = []

    def read(self, mv, pos):
        end = pos + self.size
        if end > len(mv):
            raise _short()
        self.parts.append(mv[pos:end])
        return end

    def finish(self, n):
        data = b"".join(self.parts)
        self.parts = []
        return np.frombuffer(data, dtype=self.info.elem_dtype).reshape((n,) + self.info.dims)


class _StrReader:
    """vlen strings (str for UTF-8, bytes for ASCII) and region references."""

    internal = False
    def __init__(self, info):
        self.info = info
        self.decode = info.kind == "vstr" and info.utf8
        self.items = []

    def read(self, mv, pos):
        start, end = _read_prefix(mv, pos, self.internal)
        if start is None:
            self.items.append(0)
            return end
        raw = bytes(mv[start:end])
        if self.decode:
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("invalid UTF-8 in variable-length string")
        self.items.append(raw)
        return end

    def finish(self, n):
        out = np.empty(len(self.items), dtype=self.info.dtype)
        out[:] = self.items
        self.items = []
        return out


class _ArrayReader:
    """H5T_ARRAY of a variable-length base: prod(dims) items per element."""

    internal = False
    def __init__(self, info):
        self.info = info
        self.k = math.prod(info.dims)
        self.item = _reader(info.base)

    def read(self, mv, pos):
        read = self.item.read
        for _ in range(self.k):
            pos = read(mv, pos)
        return pos

    def finish(self, n):
        return self.item.finish(n * self.k).reshape((n,) + self.info.dims)


class _CompoundReader:
    internal = False
    def __init__(self, info):
        self.info = info
        self.fields = [(name, _reader(finfo)) for name, finfo in info.fields]

    def read(self, mv, pos):
        for _, r in self.fields:
            pos = r.read(mv, pos)
        return pos

    def finish(self, n):
        out = np.empty(n, dtype=self.info.dtype)
        for name, r in self.fields:
            out[name] = r.finish(n)
        return out


class _VlenReader:
    internal = False
    def __init__(self, info):
        self.info = info
        self.base = info.base
        # a variable-length base: the payload is a run of base items, each
        # encoded as usual (its own prefixes), read until the payload is used up
        self.base_reader = _reader(self.base) if self.base.variable else None
        self.items = []

    def read(self, mv, pos):
        start, end = _read_prefix(mv, pos, self.internal)
        if start is None:
            self.items.append(0)
            return end
        base = self.base
        sub = self.base_reader
        if sub is not None:
            payload = mv[:end]          # nested items may not run past the payload
            count, p = 0, start
            while p < end:
                p = sub.read(payload, p)
                count += 1
            seq = sub.finish(count)
            self.items.append(seq.reshape((-1,) + base.dims) if base.dims else seq)
            return end
        size = base.dtype.itemsize
        if (end - start) % size:
            raise BadRequest("vlen item size is not a multiple of the base size")
        seq = np.frombuffer(bytes(mv[start:end]), dtype=base.elem_dtype)
        self.items.append(seq.reshape((-1,) + base.dims) if base.dims else seq)
        return end

    def finish(self, n):
        out = np.empty(len(self.items), dtype=self.info.dtype)
        for i, seq in enumerate(self.items):
            out[i] = seq
        self.items = []
        return out


def _reader(info):
    if not info.variable:
        return _FixedReader(info)
    kind = info.kind
    if kind in ("vstr", "regref"):
        return _StrReader(info)
    if kind == "array":
        return _ArrayReader(info)
    if kind == "compound":
        return _CompoundReader(info)
    if kind == "vlen":
        return _VlenReader(info)
    raise BadRequest(f"unsupported type kind {kind}")


# ============================================================================
# fill values
# ============================================================================

def fill_array(t, shape, fill_json=None, fill_b64=None) -> np.ndarray:
    """A new writable array of `shape` elements of type t, every element the
    fill value: fill_b64 (base64 of one element's bytes, §10.4
    fillValue_encoding) or fill_json (a JSON element); else zeros -- for
    variable-length elements the integer 0, i.e. "never written" (§11.8)."""
    info = type_info(t)
    shape = _shape_tuple(shape)
    full = shape + info.dims
    if fill_b64 is not None:
        if not isinstance(fill_b64, (str, bytes)):
            raise BadRequest("a base64 fill value must be a string")
        try:
            raw = base64.b64decode(fill_b64, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("invalid base64 fill value")
        elem = from_bytes(raw, info, 1)
    elif fill_json is not None:
        elem = from_json(fill_json, info, ())
    else:
        return np.zeros(full, dtype=info.elem_dtype)
    # a 0-d (or dims-shaped) array, so that object elements holding
    # sequences are assigned as objects, not broadcast
    elem = elem.reshape(info.dims)
    out = np.empty(full, dtype=info.elem_dtype)
    out[...] = elem
    return out
