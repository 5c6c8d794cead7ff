"""HDF5 type JSON (REST_API.md §12) <-> numpy dtypes.

Pure functions, no server state.  Every invalid input raises
``server.core.errors.BadRequest``.

Stored form (what ``normalize_type`` returns and the server echoes):

* a top-level predefined name (``"H5T_STD_I32LE"``) becomes
  ``{"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}``;
* everything else is a deep copy of what the client sent, unknown keys
  included; nested names (``base`` strings, compound field types given as a
  string) stay strings and may omit the ``LE``/``BE`` suffix (= little-endian).

numpy mapping (``dtype_of``):

* integer/float: the numpy number type with the byte order of the name;
* fixed string: ``S<length>`` (bytes, NUL padded);
* variable string: object dtype, metadata ``{"vlen": str}`` (UTF-8) or
  ``{"vlen": bytes}`` (ASCII) -- the h5py convention;
* vlen sequence: object dtype, metadata ``{"vlen": <base dtype>}``; each
  element an 1-D ndarray of the base dtype (0/None = never written);
* object reference: ``S<length or 48>``;
* region reference: object dtype, metadata ``{"vlen": bytes, "ref": "region"}``
  (variable-length elements holding the raw bytes, STORAGE.md §6.4);
* opaque: ``V<size>``;
* boolean enum: ``numpy.bool_``; other enums: the base integer dtype;
* compound: packed structured dtype (no alignment);
* array: subarray dtype ``(base, dims)`` with nested arrays flattened.  Note
  numpy expands a *top-level* subarray dtype: ``numpy.empty(shape, dt)`` has
  shape ``shape + dims`` and dtype ``dt.base`` (see ``full_shape``).
"""
import copy
import json
import math
import re
from functools import lru_cache

import numpy as np

from server.core import fastjson, limits
from server.core.errors import BadRequest

VARIABLE = "H5T_VARIABLE"

_INT_RE = re.compile(r"^H5T_STD_([IU])(8|16|32|64)(LE|BE)?$")
_FLOAT_RE = re.compile(r"^H5T_IEEE_F(16|32|64)(LE|BE)?$")

CLASSES = ("H5T_INTEGER", "H5T_FLOAT", "H5T_STRING", "H5T_COMPOUND", "H5T_ARRAY",
           "H5T_ENUM", "H5T_OPAQUE", "H5T_REFERENCE", "H5T_VLEN")
CHARSETS = ("H5T_CSET_ASCII", "H5T_CSET_UTF8")
STRPADS = ("H5T_STR_NULLPAD", "H5T_STR_NULLTERM", "H5T_STR_SPACEPAD")
REF_OBJ = "H5T_STD_REF_OBJ"
REF_REGION = "H5T_STD_REF_DSETREG"
DEFAULT_REF_LENGTH = 48
# classes an H5T_ARRAY may have as its base (§12.2)
_ARRAY_BASES = ("H5T_INTEGER", "H5T_FLOAT", "H5T_STRING", "H5T_ARRAY")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _describe(t) -> str:
    try:
        text = json.dumps(t)
    except (TypeError, ValueError):
        text = repr(t)
    return text if len(text) <= 120 else text[:117] + "..."


# ---- predefined names --------------------------------------------------------

def parse_name(name):
    """(class, numpy dtype) of a predefined name, or None if it is not one.

    The suffix is optional here (no suffix = little-endian)."""
    if not isinstance(name, str):
        return None
    m = _INT_RE.match(name)
    if m:
        kind = "i" if m.group(1) == "I" else "u"
        order = ">" if m.group(3) == "BE" else "<"
        return "H5T_INTEGER", np.dtype(f"{order}{kind}{int(m.group(2)) // 8}")
    m = _FLOAT_RE.match(name)
    if m:
        order = ">" if m.group(2) == "BE" else "<"
        return "H5T_FLOAT", np.dtype(f"{order}f{int(m.group(1)) // 8}")
    return None


def _has_suffix(name: str) -> bool:
    return name.endswith("LE") or name.endswith("BE")


# ---- validation / normalisation ---------------------------------------------

def normalize_type(t) -> dict:
    """Validate a client type (§12) and return its stored form (a deep copy).

    Committed type ids ("t-...") must be resolved by the caller; given one
    here, BadRequest is raised."""
    if isinstance(t, str):
        if t.startswith("t-"):
            raise BadRequest("committed type id must be resolved before use: " + t)
        parsed = parse_name(t)
        if parsed is None or not _has_suffix(t):
            raise BadRequest(f"invalid type name: {_describe(t)}")
        return {"class": parsed[0], "base": t}
    if not isinstance(t, dict):
        raise BadRequest(f"type must be an object or a predefined name: {_describe(t)}")
    t = copy.deepcopy(t)
    _check(t, "type")
    if not is_variable(t):          # sized before numpy allocates anything of this type
        try:
            size = type_info(t).dtype.itemsize
        except (ValueError, TypeError, OverflowError, MemoryError) as e:
            raise BadRequest(f"type too large or malformed: {e}") from None
        limits.check_item_size(size)
    return t


def _check_name(name, where: str, want_class=None):
    parsed = parse_name(name)
    if parsed is None:
        raise BadRequest(f"{where}: unsupported type name {_describe(name)}")
    if want_class is not None and parsed[0] != want_class:
        raise BadRequest(f"{where}: {name} is not of class {want_class}")


def _check_nested(t, where: str, depth: int):
    """A nested type position: a predefined name string or a type object."""
    if depth > limits.MAX_TYPE_DEPTH:
        raise BadRequest(f"{where}: types nested deeper than {limits.MAX_TYPE_DEPTH}")
    if isinstance(t, str):
        _check_name(t, where)
    elif isinstance(t, dict):
        _check(t, where, depth)
    else:
        raise BadRequest(f"{where}: type must be an object or a predefined name")


def _check(t: dict, where: str, depth: int = 0):
    cls = t.get("class")
    if not isinstance(cls, str):
        raise BadRequest(f"{where}: missing type class")
    if cls not in CLASSES:
        raise BadRequest(f"{where}: unsupported type class {_describe(cls)}")
    if cls != "H5T_ARRAY" and "dims" in t:
        raise BadRequest(f"{where}: 'dims' is only allowed for H5T_ARRAY")
    if "id" in t and not isinstance(t["id"], str):
        raise BadRequest(f"{where}: invalid committed type id")
    if cls in ("H5T_INTEGER", "H5T_FLOAT"):
        if "base" not in t:
            raise BadRequest(f"{where}: {cls} requires 'base'")
        _check_name(t["base"], where, cls)
    elif cls == "H5T_STRING":
        length = t.get("length")
        if length is None:
            raise BadRequest(f"{where}: H5T_STRING requires 'length'")
        if length != VARIABLE and not (_is_int(length) and length > 0):
            raise BadRequest(f"{where}: invalid string length {_describe(length)}")
        if length != VARIABLE:
            limits.check_item_size(length, f"{where}: string")
        if "charSet" not in t:
            raise BadRequest(f"{where}: H5T_STRING requires 'charSet'")
        if t["charSet"] not in CHARSETS:
            raise BadRequest(f"{where}: invalid charSet {_describe(t['charSet'])}")
        if "strPad" in t and t["strPad"] not in STRPADS:
            raise BadRequest(f"{where}: invalid strPad {_describe(t['strPad'])}")
    elif cls == "H5T_COMPOUND":
        fields = t.get("fields")
        if not isinstance(fields, list) or not fields:
            raise BadRequest(f"{where}: H5T_COMPOUND requires a non-empty 'fields' list")
        if len(fields) > limits.MAX_FIELDS:
            raise BadRequest(f"{where}: more than {limits.MAX_FIELDS} compound fields")
        seen = set()
        for i, field in enumerate(fields):
            if not isinstance(field, dict):
                raise BadRequest(f"{where}: compound field {i} must be an object")
            name = field.get("name")
            if not isinstance(name, str) or not name:
                raise BadRequest(f"{where}: compound field {i} needs a non-empty 'name'")
            if not name.isascii():
                raise BadRequest(f"{where}: compound field name {name!r} is not ASCII")
            if name in seen:
                raise BadRequest(f"{where}: duplicate compound field name {name!r}")
            seen.add(name)
            if "type" not in field:
                raise BadRequest(f"{where}: compound field {name!r} needs a 'type'")
            _check_nested(field["type"], f"{where}.{name}", depth + 1)
    elif cls == "H5T_ARRAY":
        dims = t.get("dims")
        if dims is None:
            raise BadRequest(f"{where}: H5T_ARRAY requires 'dims'")
        dlist = [dims] if _is_int(dims) else dims
        if (not isinstance(dlist, list) or not dlist
                or not all(_is_int(d) and d > 0 for d in dlist)):
            raise BadRequest(f"{where}: invalid array dims {_describe(dims)}")
        if len(dlist) > limits.MAX_RANK or math.prod(dlist) > limits.MAX_ITEM_SIZE:
            raise BadRequest(f"{where}: array dims {_describe(dims)} too large")
        if "base" not in t:
            raise BadRequest(f"{where}: H5T_ARRAY requires 'base'")
        base = t["base"]
        if isinstance(base, dict):
            if base.get("class") not in _ARRAY_BASES:
                raise BadRequest(
                    f"{where}: array base of class {_describe(base.get('class'))} "
                    "is not supported")
        _check_nested(base, where + ".base", depth + 1)
    elif cls == "H5T_ENUM":
        base = t.get("base")
        if not isinstance(base, dict) or base.get("class") != "H5T_INTEGER":
            raise BadRequest(f"{where}: H5T_ENUM base must be an H5T_INTEGER type object")
        _check(base, where + ".base", depth + 1)
        mapping = enum_mapping(t)
        if not mapping:
            raise BadRequest(f"{where}: H5T_ENUM requires a non-empty 'mapping'")
        base_dt = parse_name(base["base"])[1]
        info = np.iinfo(base_dt)
        for name, value in mapping.items():
            if not (info.min <= value <= info.max):
                raise BadRequest(f"{where}: enum value {name}={value} out of range")
    elif cls == "H5T_OPAQUE":
        size = t.get("size")
        if not (_is_int(size) and size > 0):
            raise BadRequest(f"{where}: H5T_OPAQUE requires a positive 'size'")
        limits.check_item_size(size, f"{where}: opaque type")
    elif cls == "H5T_REFERENCE":
        base = t.get("base")
        if base not in (REF_OBJ, REF_REGION):
            raise BadRequest(f"{where}: invalid reference base {_describe(base)}")
        if "length" in t:
            length = t["length"]
            ok = (_is_int(length) and length > 0) or (length == VARIABLE and base == REF_REGION)
            if not ok:
                raise BadRequest(f"{where}: invalid reference length {_describe(length)}")
    elif cls == "H5T_VLEN":
        if "base" not in t:
            raise BadRequest(f"{where}: H5T_VLEN requires 'base'")
        _check_nested(t["base"], where + ".base", depth + 1)


def enum_mapping(t: dict) -> dict:
    """{name: value} of an enum given as 'mapping' or h5pyd 1.0's 'members'.

    Raises BadRequest for malformed entries; {} when neither key is present."""
    mapping = t.get("mapping")
    members = t.get("members")
    out = {}
    if mapping is not None:
        if not isinstance(mapping, dict):
            raise BadRequest("enum 'mapping' must be an object")
        for name, value in mapping.items():
            if not _is_int(value):
                raise BadRequest(f"enum value for {name!r} must be an integer")
            out[name] = value
    elif members is not None:
        if not isinstance(members, list):
            raise BadRequest("enum 'members' must be a list")
        for m in members:
            if (not isinstance(m, dict) or not isinstance(m.get("name"), str)
                    or not _is_int(m.get("value"))):
                raise BadRequest("enum members must be {name, value} objects")
            out[m["name"]] = m["value"]
    return out


def for_clients(t):
    """A stored type as responses show it: an enum given only as h5pyd 1.0's `members`
    also gets the `mapping` h5pyd 0.24 requires (and the reverse), so a bucket written
    by either client reads with the other. Unchanged types are returned as they are."""
    if isinstance(t, list):
        out = [for_clients(x) for x in t]
        return t if all(a is b for a, b in zip(out, t)) else out
    if not isinstance(t, dict):
        return t
    out = t
    for key in ("base", "fields", "type"):
        if key in t:
            sub = for_clients(t[key])
            if sub is not t[key]:
                out = out if out is not t else dict(t)
                out[key] = sub
    if t.get("class") == "H5T_ENUM" and ("mapping" in t) != ("members" in t):
        out = out if out is not t else dict(t)
        mapping = enum_mapping(t)
        out["mapping"] = mapping
        out["members"] = [{"name": n, "value": v} for n, v in mapping.items()]
    return out


# ---- type info (cached) -----------------------------------------------------

class TypeInfo:
    """Resolved facts about one type, used by values.py.

    kind: 'int' 'float' 'enum' 'bool' 'fstr' 'vstr' 'ref' 'regref' 'opaque'
          'compound' 'array' 'vlen'.
    dtype: dtype_of(t).  elem_dtype: the dtype of one base element (for
    'array' the innermost base, else == dtype).  dims: flattened array dims
    (() unless kind == 'array').  base: TypeInfo of the array's innermost base
    or of the vlen base.  fields: tuple of (name, TypeInfo) for compounds.
    variable: §12.5.  utf8: charset of strings.  length: bytes of a fixed
    string / object reference.  size: opaque size.
    """
    __slots__ = ("kind", "dtype", "elem_dtype", "dims", "base", "fields", "variable",
                 "utf8", "length", "size", "json")

    def __init__(self, kind, dtype, *, dims=(), base=None, fields=(), variable=False,
                 utf8=False, length=0, size=0, json=None):
        self.kind = kind
        self.dtype = dtype
        self.dims = tuple(dims)
        self.elem_dtype = dtype.base if self.dims else dtype
        self.base = base
        self.fields = tuple(fields)
        self.variable = variable
        self.utf8 = utf8
        self.length = length
        self.size = size
        self.json = json

    @property
    def itemsize(self):
        return VARIABLE if self.variable else self.dtype.itemsize

    def __repr__(self):
        return f"TypeInfo({self.kind}, {self.dtype!r}, dims={self.dims})"


def _vlen_dtype(py_type, **extra):
    return np.dtype("O", metadata={"vlen": py_type, **extra})


def _build(t) -> TypeInfo:
    if isinstance(t, str):
        parsed = parse_name(t)
        if parsed is None:
            raise BadRequest(f"unsupported type name {_describe(t)}")
        return TypeInfo("int" if parsed[0] == "H5T_INTEGER" else "float", parsed[1], json=t)
    if not isinstance(t, dict):
        raise BadRequest(f"invalid type {_describe(t)}")
    cls = t.get("class")
    if cls in ("H5T_INTEGER", "H5T_FLOAT"):
        parsed = parse_name(t.get("base"))
        if parsed is None or parsed[0] != cls:
            raise BadRequest(f"invalid {cls} base {_describe(t.get('base'))}")
        return TypeInfo("int" if cls == "H5T_INTEGER" else "float", parsed[1], json=t)
    if cls == "H5T_STRING":
        length = t.get("length")
        utf8 = t.get("charSet") == "H5T_CSET_UTF8"
        if length == VARIABLE:
            return TypeInfo("vstr", _vlen_dtype(str if utf8 else bytes), variable=True,
                            utf8=utf8, json=t)
        if not (_is_int(length) and length > 0):
            raise BadRequest(f"invalid string length {_describe(length)}")
        return TypeInfo("fstr", np.dtype(f"S{length}"), utf8=utf8, length=length, json=t)
    if cls == "H5T_REFERENCE":
        if t.get("base") == REF_REGION:
            return TypeInfo("regref", _vlen_dtype(bytes, ref="region"), variable=True, json=t)
        if t.get("base") != REF_OBJ:
            raise BadRequest(f"invalid reference base {_describe(t.get('base'))}")
        length = t.get("length", DEFAULT_REF_LENGTH)
        if not (_is_int(length) and length > 0):
            raise BadRequest(f"invalid reference length {_describe(length)}")
        return TypeInfo("ref", np.dtype(f"S{length}"), length=length, json=t)
    if cls == "H5T_OPAQUE":
        size = t.get("size")
        if not (_is_int(size) and size > 0):
            raise BadRequest("invalid opaque size")
        return TypeInfo("opaque", np.dtype(f"V{size}"), size=size, json=t)
    if cls == "H5T_ENUM":
        base = _info(t.get("base"))
        if base.kind != "int":
            raise BadRequest("enum base must be an integer type")
        mapping = enum_mapping(t)
        if set(mapping) == {"TRUE", "FALSE"} and base.dtype.kind == "i" \
                and base.dtype.itemsize == 1:
            return TypeInfo("bool", np.dtype(np.bool_), json=t)
        return TypeInfo("enum", base.dtype, json=t)
    if cls == "H5T_COMPOUND":
        fields = t.get("fields")
        if not isinstance(fields, list) or not fields:
            raise BadRequest("compound type without fields")
        infos, names, formats, offsets = [], [], [], []
        offset = 0
        for f in fields:
            if not isinstance(f, dict) or not isinstance(f.get("name"), str):
                raise BadRequest("invalid compound field")
            fi = _info(f.get("type"))
            infos.append((f["name"], fi))
            names.append(f["name"])
            formats.append(fi.dtype)
            offsets.append(offset)
            offset += fi.dtype.itemsize
        try:
            dt = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                           "itemsize": offset})
        except (ValueError, TypeError) as e:
            raise BadRequest(f"invalid compound type: {e}")
        return TypeInfo("compound", dt, fields=infos,
                        variable=any(fi.variable for _, fi in infos), json=t)
    if cls == "H5T_ARRAY":
        dims = t.get("dims")
        dims = [dims] if _is_int(dims) else dims
        if not isinstance(dims, list) or not dims or \
                not all(_is_int(d) and d > 0 for d in dims):
            raise BadRequest("invalid array dims")
        base = _info(t.get("base"))
        if base.kind == "array":
            dims = list(dims) + list(base.dims)
            base = base.base
        if base.kind not in ("int", "float", "fstr", "vstr"):
            raise BadRequest("unsupported array base type")
        dt = np.dtype((base.dtype, tuple(dims)))
        return TypeInfo("array", dt, dims=dims, base=base, variable=base.variable,
                        utf8=base.utf8, json=t)
    if cls == "H5T_VLEN":
        base = _info(t.get("base"))
        return TypeInfo("vlen", _vlen_dtype(base.dtype), base=base, variable=True, json=t)
    raise BadRequest(f"unsupported type class {_describe(cls)}")


@lru_cache(maxsize=4096)
def _info_cached(key: bytes) -> TypeInfo:
    return _build(json.loads(key))


def _key(t) -> bytes:
    """A type's cache key: its JSON, keys sorted (through orjson where that is exact: a
    compound type 1 µs, not 14); a NaN, or anything JSON cannot hold, is no type."""
    try:
        return fastjson.exact(t, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        raise BadRequest(f"invalid type {_describe(t)}")


@lru_cache(maxsize=256)
def _simple_cached(cls: str, base: str) -> TypeInfo:
    return _build({"class": cls, "base": base})


@lru_cache(maxsize=256)
def _name_cached(name: str) -> TypeInfo:
    return _build(name)


def _info(t) -> TypeInfo:
    if isinstance(t, TypeInfo):
        return t
    if type(t) is dict and len(t) == 2:
        # hot path: {"class": ..., "base": "<name>"} without JSON encoding
        cls, base = t.get("class"), t.get("base")
        if type(cls) is str and type(base) is str:
            return _simple_cached(cls, base)
    elif type(t) is str:
        return _name_cached(t)
    return _info_cached(_key(t))


def type_info(t) -> TypeInfo:
    """The cached TypeInfo of a stored type (or nested name / TypeInfo)."""
    return _info(t)


# ---- public helpers ----------------------------------------------------------

def dtype_of(t) -> np.dtype:
    """numpy dtype of a stored type (cached)."""
    return _info(t).dtype


def item_size(t):
    """Bytes per element, or "H5T_VARIABLE" for variable-length types (§12.5)."""
    return _info(t).itemsize


def is_variable(t) -> bool:
    """§12.5 (plus region references, variable-length per STORAGE.md §6.4)."""
    return _info(t).variable


def is_bool(t) -> bool:
    return _info(t).kind == "bool"


def base_kind(t) -> str:
    """The TypeInfo kind of t ('int', 'float', 'fstr', 'compound', ...)."""
    return _info(t).kind


def type_class(t) -> str:
    """The H5T class of a stored type or a nested name."""
    if isinstance(t, str):
        parsed = parse_name(t)
        if parsed is None:
            raise BadRequest(f"unsupported type name {_describe(t)}")
        return parsed[0]
    if isinstance(t, dict) and isinstance(t.get("class"), str):
        return t["class"]
    raise BadRequest(f"invalid type {_describe(t)}")


def array_dims(t) -> tuple:
    """The (flattened) dims of a top-level H5T_ARRAY type, else ()."""
    return _info(t).dims


def full_shape(t, shape) -> tuple:
    """Shape of the numpy array holding `shape` elements of type t: numpy
    expands a top-level subarray dtype, so array types add their dims."""
    return tuple(shape) + _info(t).dims


def element_count(shape) -> int:
    return math.prod(shape)


def type_equal(a, b) -> bool:
    """Stored-JSON equality (§12.8); predefined top-level names compare
    equal to their expanded object."""
    if a == b:
        return True
    try:
        return normalize_type(a) == normalize_type(b)
    except BadRequest:
        return False
