"""Dataset creation properties (REST_API.md §10.2-§10.4, §10.8) and the chunk layout
of stored datasets (STORAGE.md §4.3, §6.1, §7).

Creation: `creation_layout` validates `creationProperties.layout`, picks the
chunk dims and decides what is stored. What is stored is always what HSDS 1.0.2
itself would read back with the same chunk grid: `creationProperties.layout` holds
the layout actually used ({"class": "H5D_CHUNKED", "dims": […]}, or
{"class": "H5D_CONTIGUOUS"} when the dataset is a single fixed-extent chunk, or a
reference layout verbatim); no top-level `layout` is written (HSDS 1.0.2 answers
500 when the two differ).

Reading: `chunk_dims_of` gives the chunk dims of any stored dataset -- written by
HSDS 0.9 (top-level `layout`), HSDS 1.0.2 or h5cloud.
"""
import math

from . import ids, types, values
from .errors import BadRequest, Conflict

MIN_CHUNK_SIZE = 1024 * 1024            # config min_chunk_size default
MAX_CHUNK_SIZE = 4 * 1024 * 1024        # config max_chunk_size default
CONTIGUOUS_REF_LIMIT = 8096 * 1024      # STORAGE.md §7: fixed, independent of config
VARIABLE_ITEM_SIZE = 128                # item size guess for variable-length types
UNLIMITED = "H5S_UNLIMITED"
PARTITION_PRIMES = (29, 31, 37, 41, 43, 47, 53, 59, 61, 67)

CHUNKED = "H5D_CHUNKED"
CONTIGUOUS = "H5D_CONTIGUOUS"
COMPACT = "H5D_COMPACT"
CONTIGUOUS_REF = "H5D_CONTIGUOUS_REF"
CHUNKED_REF = "H5D_CHUNKED_REF"
CHUNKED_REF_INDIRECT = "H5D_CHUNKED_REF_INDIRECT"
REF_CLASSES = (CONTIGUOUS_REF, CHUNKED_REF, CHUNKED_REF_INDIRECT)
LAYOUT_CLASSES = (CHUNKED, CONTIGUOUS, COMPACT) + REF_CLASSES


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _isz(item_size) -> int:
    return VARIABLE_ITEM_SIZE if item_size == "H5T_VARIABLE" else int(item_size)


def _maxdims_list(maxdims, rank: int):
    """maxdims as ints (0 = unlimited; 'H5S_UNLIMITED'/None accepted), or None."""
    if maxdims is None:
        return None
    if not isinstance(maxdims, (list, tuple)):
        maxdims = [maxdims]
    out = []
    for m in maxdims:
        if m == UNLIMITED or m is None:
            out.append(0)
        elif _is_int(m) and m >= 0:
            out.append(m)
        else:
            raise BadRequest(f"invalid maxdims: {maxdims!r}")
    if len(out) != rank:
        raise BadRequest("maxdims rank does not match the shape")
    return out


# ============================================================================
# chunk shape (§10.2)
# ============================================================================

def chunk_dims_for(dims, maxdims, item_size, requested=None, min_size=MIN_CHUNK_SIZE,
                   max_size=MAX_CHUNK_SIZE) -> list:
    """The HSDS chunk shape algorithm (REST_API.md §10.2).

    dims: extents (() for scalar); maxdims: None or per-dimension limits (0 /
    'H5S_UNLIMITED' = unlimited); item_size: bytes or 'H5T_VARIABLE' (-> 128);
    requested: the client's chunk dims or None."""
    dims = [int(d) for d in dims]
    rank = len(dims)
    if rank == 0:
        return [1]
    maxdims = _maxdims_list(maxdims, rank)
    isz = _isz(item_size)
    if requested is not None:
        start = list(requested)
    elif maxdims is not None:
        start = list(maxdims)
    else:
        start = list(dims)
    layout = [int(x) if x else 1024 for x in start]

    def size(shape):
        return isz * math.prod(shape)

    if size(layout) < min_size:
        extendable = 0
        if maxdims is not None:
            extendable = sum(1 for m, n in zip(maxdims, dims) if m == 0 or m > n)
        if extendable == 0 and size([n or 1 for n in dims]) <= min_size:
            # the whole dataset as one chunk (zero extents count as 1)
            return [n or 1 for n in dims]
        while True:
            before = size(layout)
            done = False
            for d in range(rank - 1, -1, -1):
                if extendable > 0:
                    if maxdims[d] == 0:
                        layout[d] *= 2
                    elif maxdims[d] > layout[d]:
                        layout[d] *= 2
                        if layout[d] >= dims[d]:
                            layout[d] = maxdims[d]
                            extendable -= 1
                    else:
                        continue
                elif dims[d] > layout[d]:
                    layout[d] = min(layout[d] * 2, dims[d])
                else:
                    continue
                if size(layout) > min_size:
                    done = True
                    break
            after = size(layout)
            if done or after >= min_size or after <= before:
                break
    elif size(layout) > max_size:
        while True:
            before = size(layout)
            done = False
            for d in range(rank):
                if layout[d] > 1:
                    layout[d] = -(-layout[d] // 2)
                    if size(layout) <= max_size:
                        done = True
                        break
            if done or size(layout) >= before:
                break
    return layout


def contiguous_ref_dims(dims, item_size, limit=CONTIGUOUS_REF_LIMIT) -> list:
    """Virtual chunk dims of a contiguous byte range (the contiguous rule, §10.2 /
    STORAGE.md §7): from the last dimension back, whole extents while they fit
    under `limit` bytes; the first that does not fit is halved (rounding up) until
    it does; 1 for every earlier dimension. Any zero extent -> the extents."""
    dims = [int(d) for d in dims]
    if any(d == 0 for d in dims):
        return dims
    out = [1] * len(dims)
    acc = _isz(item_size)
    for d in range(len(dims) - 1, -1, -1):
        n = dims[d]
        if n * acc < limit:
            out[d] = n
            acc *= n
            continue
        while n > 1 and n * acc >= limit:
            n = -(-n // 2)
        out[d] = n
        break
    return out


# ============================================================================
# creation (§10.2)
# ============================================================================

def _positive_dims(value, what: str) -> list:
    if _is_int(value):
        value = [value]
    if not isinstance(value, list) or not all(_is_int(x) for x in value):
        raise BadRequest(f"layout {what} must be a list of integers")
    if any(x <= 0 for x in value):
        raise BadRequest(f"layout {what} must be positive")
    return value


def _check_layout_dims(req: dict, dims, maxdims) -> list:
    chunk = _positive_dims(req["dims"], "dims")
    if dims is None or len(chunk) != len(dims):
        raise BadRequest("layout dims rank does not match the shape")
    for i, (c, n) in enumerate(zip(chunk, dims)):
        limit = n if maxdims is None else maxdims[i]
        if limit and c > limit:
            raise BadRequest(f"layout dims {chunk} exceed the dataset's "
                             f"{'maxdims' if maxdims else 'extent'} in dimension {i}")
        if not limit and maxdims is None:
            raise BadRequest(f"layout dims {chunk} exceed the dataset's extent "
                             f"in dimension {i}")
    return chunk


def _require(req: dict, keys, cls: str):
    missing = [k for k in keys if k not in req]
    if missing:
        raise BadRequest(f"{cls} layout requires {', '.join(missing)}")


def _check_ref(req: dict, cls: str, type_json, shape_class: str, dims, maxdims):
    if types.is_variable(type_json):
        raise BadRequest(f"{cls} needs a fixed-size type")
    if shape_class == "H5S_NULL":
        raise BadRequest(f"{cls} needs a dataspace")
    if "file_uri" in req and not isinstance(req["file_uri"], str):
        raise BadRequest("layout file_uri must be a string")
    if cls == CONTIGUOUS_REF:
        _require(req, ("file_uri", "offset", "size"), cls)
        if "dims" in req:
            raise BadRequest(f"{cls} layout takes no dims")
        if maxdims is not None:
            raise BadRequest(f"{cls} layout cannot have maxdims")
        for key in ("offset", "size"):
            if not _is_int(req[key]) or req[key] < 0:
                raise BadRequest(f"layout {key} must be a non-negative integer")
        return None
    if shape_class != "H5S_SIMPLE":
        raise BadRequest(f"{cls} layout needs a simple shape")
    if cls == CHUNKED_REF:
        _require(req, ("file_uri", "dims", "chunks"), cls)
        if not isinstance(req["chunks"], dict):
            raise BadRequest("layout chunks must be an object")
    else:
        _require(req, ("dims", "chunk_table"), cls)
        if not isinstance(req["chunk_table"], str) or not ids.is_valid(req["chunk_table"], "d"):
            raise BadRequest("layout chunk_table must be a dataset id")
    chunk = _check_layout_dims(req, dims, maxdims)
    if "hyper_dims" in req:
        hyper = _positive_dims(req["hyper_dims"], "hyper_dims")
        if len(hyper) != len(chunk) or any(c % h for c, h in zip(chunk, hyper)):
            raise BadRequest("layout hyper_dims must divide dims")
    return chunk


def _partition_count(dims, maxdims, chunk, max_chunks_per_folder: int):
    """HSDS's partition_count for a new chunked layout (None when not needed)."""
    if max_chunks_per_folder <= 0 or not dims:
        return None
    unlimited = sum(1 for m in maxdims or () if m == 0)
    num = 1
    for i, c in enumerate(chunk):
        if maxdims:
            extent = maxdims[i] or int(math.pow(10.0 ** 6, 1 / unlimited))
        else:
            extent = dims[i]
        num *= -(-extent // c)
    if num > max_chunks_per_folder:
        return -(-num // max_chunks_per_folder)
    return None


def creation_layout(type_json, shape_json, creation_props, settings_min=MIN_CHUNK_SIZE,
                    settings_max=MAX_CHUNK_SIZE, max_chunks_per_folder=0):
    """Validate creationProperties.layout (§10.2) for a new dataset.

    Returns (effective layout or None, creationProperties to store). The effective
    layout is what clients see as the top-level `layout` ({"class": "H5D_CHUNKED",
    "dims": […]}); the stored properties keep every client key verbatim except
    `layout`, which records the layout used (see the module doc)."""
    props = dict(creation_props or {})
    if not isinstance(shape_json, dict):
        raise BadRequest("invalid shape")
    shape_class = shape_json.get("class", "H5S_SCALAR")
    if shape_class == "H5S_NULL":
        dims = None
    elif shape_class == "H5S_SCALAR":
        dims = []
    else:
        dims = [int(n) for n in shape_json.get("dims") or []]
    maxdims = None
    if shape_class == "H5S_SIMPLE" and shape_json.get("maxdims") is not None:
        maxdims = _maxdims_list(shape_json["maxdims"], len(dims))
    isz = types.item_size(type_json)
    filters = props.get("filters")
    if filters and shape_class == "H5S_NULL":
        raise BadRequest("a null-space dataset cannot have filters")

    req = props.get("layout")
    if req is not None and not isinstance(req, dict):
        raise BadRequest("creationProperties.layout must be an object")
    if not req:
        req = None
    cls = None
    if req is not None:
        if "class" not in req:
            raise BadRequest("layout needs a class")
        cls = req["class"]
        if cls not in LAYOUT_CLASSES:
            raise BadRequest(f"unknown layout class: {cls!r}")
        if cls == CHUNKED:
            if "dims" not in req:
                raise BadRequest("H5D_CHUNKED layout requires dims")
            if shape_class != "H5S_SIMPLE":
                raise BadRequest("H5D_CHUNKED layout needs a simple shape")
            _check_layout_dims(req, dims, maxdims)
            if "partition_count" in req and (not _is_int(req["partition_count"])
                                             or req["partition_count"] < 1):
                raise BadRequest("layout partition_count must be a positive integer")
        elif cls in (CONTIGUOUS, COMPACT):
            if "dims" in req:
                raise BadRequest(f"{cls} layout takes no dims")
            if maxdims is not None:       # HSDS 1.0.2: even maxdims equal to the dims
                raise BadRequest(f"a dataset with maxdims cannot have the {cls} layout")
        else:
            _check_ref(req, cls, type_json, shape_class, dims, maxdims)

    if dims is None:
        return None, props

    if cls in (CHUNKED_REF, CHUNKED_REF_INDIRECT):
        return {"class": CHUNKED, "dims": list(req["dims"])}, props
    if cls == CONTIGUOUS_REF:
        chunk = [n or 1 for n in contiguous_ref_dims(dims, isz)] if dims else [1]
        return {"class": CHUNKED, "dims": chunk}, props

    requested = req["dims"] if cls == CHUNKED else None
    if _is_int(requested):
        requested = [requested]
    chunk = chunk_dims_for(dims, maxdims, isz, requested, settings_min, settings_max)
    effective = {"class": CHUNKED, "dims": chunk}
    if not dims:
        # scalar: one element, stored as HSDS 1.0.2 does
        props["layout"] = {"class": CONTIGUOUS}
        return effective, props
    one_chunk = maxdims is None and chunk == dims
    if cls in (CONTIGUOUS, COMPACT):
        contiguous = one_chunk
    elif cls is None:
        contiguous = (one_chunk and not filters
                      and _isz(isz) * math.prod(dims) < settings_min)
    else:
        contiguous = False
    if contiguous:
        props["layout"] = {"class": CONTIGUOUS}
        return effective, props
    stored = dict(req) if cls == CHUNKED else {"class": CHUNKED}
    stored["class"] = CHUNKED
    stored["dims"] = chunk
    if "partition_count" not in stored:
        count = _partition_count(dims, maxdims, chunk, max_chunks_per_folder)
        if count:
            stored["partition_count"] = count
    if stored.get("partition_count"):
        effective["partition_count"] = stored["partition_count"]
    props["layout"] = stored
    return effective, props


# ============================================================================
# reading stored datasets (STORAGE.md §4.3, §6.1)
# ============================================================================

def layout_json_of(dset_doc: dict):
    """The layout that governs a stored dataset's chunks: a top-level `layout`
    (HSDS 0.9) wins unless creationProperties.layout is a reference layout."""
    props = dset_doc.get("creationProperties")
    inner = props.get("layout") if isinstance(props, dict) else None
    inner = inner if isinstance(inner, dict) and inner else None
    top = dset_doc.get("layout")
    top = top if isinstance(top, dict) and top else None
    if top is not None and not (inner is not None and inner.get("class") in REF_CLASSES):
        return top
    return inner


def _doc_dims(dset_doc: dict):
    shape = dset_doc.get("shape") or {}
    cls = shape.get("class", "H5S_SCALAR") if isinstance(shape, dict) else None
    if cls == "H5S_NULL":
        return None
    if cls == "H5S_SIMPLE":
        return [int(n) for n in shape.get("dims") or []]
    return []


def chunk_dims_of(dset_doc: dict):
    """Chunk dims for reading any stored dataset (HSDS 0.9, 1.0.2 or h5cloud).

    H5D_CHUNKED* -> layout dims; H5D_CONTIGUOUS / H5D_COMPACT / no layout -> the
    dataset extents (a zero extent -> 1); scalar -> (1,); H5D_CONTIGUOUS_REF ->
    the contiguous rule with the fixed 8 290 304-byte limit. Null space -> None."""
    dims = _doc_dims(dset_doc)
    if dims is None:
        return None
    if not dims:
        return (1,)
    lay = layout_json_of(dset_doc) or {}
    cls = lay.get("class")
    if cls == CONTIGUOUS_REF:
        isz = types.item_size(dset_doc["type"])
        return tuple(n or 1 for n in contiguous_ref_dims(dims, isz))
    if isinstance(cls, str) and cls.startswith(CHUNKED):
        chunk = lay.get("dims")
        if _is_int(chunk):
            chunk = [chunk]
        if (isinstance(chunk, list) and len(chunk) == len(dims)
                and all(_is_int(c) and c > 0 for c in chunk)):
            return tuple(chunk)
    # contiguous, compact, none -- or a chunked layout without usable dims
    return tuple(n or 1 for n in dims)


def partition_count_of(dset_doc: dict) -> int:
    """layout.partition_count when it partitions the chunks (>= 2), else 0."""
    lay = layout_json_of(dset_doc) or {}
    n = lay.get("partition_count")
    return n if _is_int(n) and n >= 2 else 0


def partition_of(index, count: int) -> int:
    """The partition (p<m>/ folder, c<m>- id) of a chunk index (STORAGE.md §6.1)."""
    return sum(int(k) * PARTITION_PRIMES[d % 10] for d, k in enumerate(index)) % count


# ============================================================================
# filters (§10.3)
# ============================================================================

# class -> (id, canonical name, other accepted names)
FILTERS = {
    "H5Z_FILTER_DEFLATE": (1, "gzip", ("deflate", "zlib")),
    "H5Z_FILTER_SHUFFLE": (2, "shuffle", ()),
    "H5Z_FILTER_FLETCHER32": (3, "fletcher32", ()),
    "H5Z_FILTER_SZIP": (4, "szip", ()),
    "H5Z_FILTER_NBIT": (5, "nbit", ()),
    "H5Z_FILTER_SCALEOFFSET": (6, "scaleoffset", ()),
    "H5Z_FILTER_LZF": (32000, "lzf", ()),
    "H5Z_FILTER_BLOSC": (32001, "blosclz", ()),
    "H5Z_FILTER_SNAPPY": (32003, "snappy", ()),
    "H5Z_FILTER_LZ4": (32004, "lz4", ()),
    "H5Z_FILTER_LZ4HC": (32005, "lz4hc", ()),
    "H5Z_FILTER_BITSHUFFLE": (32008, "bitshuffle", ()),
    "H5Z_FILTER_ZSTD": (32015, "zstd", ()),
}
USER_FILTER = "H5Z_FILTER_USER"
DEFAULT_COMPRESSORS = ("blosclz", "lz4", "lz4hc", "gzip", "zstd", "deflate")
ALWAYS_SUPPORTED = ("H5Z_FILTER_SHUFFLE", "H5Z_FILTER_BITSHUFFLE", "H5Z_FILTER_FLETCHER32",
                    "H5Z_FILTER_NBIT", "H5Z_FILTER_SCALEOFFSET")
_BY_ID = {v[0]: k for k, v in FILTERS.items()}
_BY_NAME = {}
for _cls, (_id, _name, _others) in FILTERS.items():
    for _n in (_name,) + _others:
        _BY_NAME[_n] = _cls


def _class_by_name(name):
    return _BY_NAME.get(name.lower()) if isinstance(name, str) else None


def _filter_class_of(key) -> str:
    """A filter class from a bare id or string (name or class)."""
    if _is_int(key):
        cls = _BY_ID.get(key)
    elif isinstance(key, str):
        cls = key.upper() if key.upper() in FILTERS else _class_by_name(key)
    else:
        cls = None
    if cls is None:
        raise BadRequest(f"unknown filter: {key!r}")
    return cls


def _supported_classes(compressors) -> set:
    ok = set(ALWAYS_SUPPORTED)
    for name in compressors if compressors is not None else DEFAULT_COMPRESSORS:
        cls = _class_by_name(name)
        if cls:
            ok.add(cls)
    return ok


def _normalize_filter(entry) -> tuple:
    """-> (filter class it stands for, normalised object)."""
    if isinstance(entry, bool):
        raise BadRequest(f"invalid filter: {entry!r}")
    if _is_int(entry) or isinstance(entry, str):
        cls = _filter_class_of(entry)
        fid, name, _ = FILTERS[cls]
        if isinstance(entry, str) and _class_by_name(entry) == cls:
            name = entry.lower()
        return cls, {"class": cls, "id": fid, "name": name}
    if not isinstance(entry, dict):
        raise BadRequest(f"invalid filter: {entry!r}")
    out = dict(entry)
    given_cls = entry.get("class")
    if given_cls is None:
        raise BadRequest("a filter object needs a class")
    if not isinstance(given_cls, str):
        raise BadRequest(f"invalid filter class: {given_cls!r}")
    given_id, given_name = entry.get("id"), entry.get("name")
    if given_id is not None and not _is_int(given_id):
        raise BadRequest(f"invalid filter id: {given_id!r}")
    if given_name is not None and not isinstance(given_name, str):
        raise BadRequest(f"invalid filter name: {given_name!r}")
    if given_cls == USER_FILTER:
        by_id = _BY_ID.get(given_id) if given_id is not None else None
        by_name = _class_by_name(given_name) if given_name is not None else None
        if given_id is not None and by_id is None:
            raise BadRequest(f"unknown filter id: {given_id}")
        if given_name is not None and by_name is None:
            raise BadRequest(f"unknown filter: {given_name!r}")
        if by_id and by_name and by_id != by_name:
            raise BadRequest(f"filter id {given_id} does not match name {given_name!r}")
        cls = by_id or by_name
        if cls is None:
            raise BadRequest("a H5Z_FILTER_USER filter needs an id or a name")
    else:
        cls = given_cls if given_cls in FILTERS else None
        if cls is None:
            raise BadRequest(f"unknown filter class: {given_cls!r}")
        if given_id is not None and given_id != FILTERS[cls][0]:
            raise BadRequest(f"filter id {given_id} does not match class {cls}")
    fid, name, _ = FILTERS[cls]
    if given_name is not None:
        named = _class_by_name(given_name)
        if cls == "H5Z_FILTER_SHUFFLE" and named == "H5Z_FILTER_BITSHUFFLE":
            named = cls         # HSDS 1.0.2: a shuffle filter named bitshuffle bit-shuffles
        if named is not None and named != cls:
            raise BadRequest(f"filter name {given_name!r} does not match class {given_cls}")
        if named == cls:
            name = given_name.lower()
    out["class"] = given_cls
    out["id"] = fid
    out["name"] = name
    return cls, out


def normalize_filters(filters, compressors=None) -> list:
    """creationProperties.filters -> a list of {"class", "id", "name", …} (§10.3).

    compressors: the compressor names the server offers (domain `compressors`);
    filters other than shuffle/bitshuffle/fletcher32/nbit/scaleoffset and those -> 400."""
    if not isinstance(filters, list):
        raise BadRequest("filters must be a list")
    supported = _supported_classes(compressors)
    out = []
    for entry in filters:
        cls, obj = _normalize_filter(entry)
        if cls not in supported:
            raise BadRequest(f"filter {obj['name']} is not supported")
        out.append(obj)
    return out


# ============================================================================
# fill value (§10.4)
# ============================================================================

def check_fill_value(creation_props, type_json) -> None:
    """400 unless creationProperties.fillValue is a valid element of the type (JSON,
    or base64 of its bytes with fillValue_encoding "base64"); null = no fill value."""
    if not isinstance(creation_props, dict):
        return
    encoding = creation_props.get("fillValue_encoding")
    if "fillValue_encoding" in creation_props and encoding is not None \
            and encoding != "base64":
        raise BadRequest(f"unsupported fillValue_encoding: {encoding!r}")
    if "fillValue" not in creation_props:
        return
    fill = creation_props["fillValue"]
    if fill is None:
        return
    try:
        if encoding == "base64":
            if not isinstance(fill, str):
                raise BadRequest("a base64 fillValue must be a string")
            values.fill_array(type_json, (), fill_b64=fill)
        else:
            values.from_json(fill, type_json, ())
    except BadRequest as err:
        raise BadRequest(f"invalid fillValue: {err.message}") from None
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as err:
        raise BadRequest(f"invalid fillValue: {err}") from None


# ============================================================================
# resize (§10.8)
# ============================================================================

def resize_plan(shape_json, body):
    """PUT /datasets/{id}/shape -> (new dims, selection text of the grown region or
    None). The grown region is given when exactly one dimension grew and none
    shrank: "[lo:hi,:,…]". 400 for bad input / not extensible, 409 beyond maxdims."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    has_shape, has_extend = "shape" in body, "extend" in body
    if has_shape == has_extend:
        raise BadRequest("give either shape or extend")
    if not isinstance(shape_json, dict) or shape_json.get("class") != "H5S_SIMPLE" \
            or shape_json.get("maxdims") is None:
        raise BadRequest("the dataset is not extensible")
    dims = [int(n) for n in shape_json.get("dims") or []]
    rank = len(dims)
    maxdims = _maxdims_list(shape_json["maxdims"], rank)
    if has_shape:
        new = body["shape"]
        if _is_int(new):
            new = [new]
        if not isinstance(new, list) or not all(_is_int(n) for n in new):
            raise BadRequest("shape must be an integer or a list of integers")
        if len(new) != rank:
            raise BadRequest(f"shape has rank {len(new)}, the dataset has rank {rank}")
        if any(n < 0 for n in new):
            raise BadRequest("extents must not be negative")
    else:
        extend, dim = body["extend"], body.get("extend_dim", 0)
        if not _is_int(extend) or extend <= 0:
            raise BadRequest("extend must be a positive integer")
        if dim is None:
            dim = 0
        if not _is_int(dim) or dim < 0 or dim >= rank:
            raise BadRequest(f"extend_dim must be in 0..{rank - 1}")
        new = list(dims)
        new[dim] += extend
    for i, (n, m) in enumerate(zip(new, maxdims)):
        if m and n > m:
            raise Conflict(f"extent {n} exceeds maxdims {m} in dimension {i}")
    grew = [i for i in range(rank) if new[i] > dims[i]]
    shrank = [i for i in range(rank) if new[i] < dims[i]]
    selection = None
    if len(grew) == 1 and not shrank:
        parts = [":"] * rank
        parts[grew[0]] = f"{dims[grew[0]]}:{new[grew[0]]}"
        selection = "[" + ",".join(parts) + "]"
    return new, selection
