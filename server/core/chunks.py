"""The chunk kernel: stored chunk bytes <-> the full chunk as a numpy array
(STORAGE.md §6), plus the pure parts of reference layouts (§7).

Pure, no I/O.  A ``ChunkCodec`` knows one dataset's type, chunk dims, filter
pipeline (core.codecs) and fill value:

* ``decode(data)`` -> a WRITABLE array of shape ``types.full_shape(type, chunk_dims)``
  (chunk dims + array-type dims) and dtype ``dtype_of(type)`` (its base for array
  types); ``data=None`` (no key) -> the fill chunk.  Fixed-size types: the decoded
  bytes must be at least prod(chunk dims) x itemsize -- a shorter chunk is a
  damaged chunk (ServerError, 500) except with ``pad=True`` (contiguous-ref
  virtual chunks, whose last range may end at the end of the file: zero padded);
  a longer unfiltered one is truncated to the full chunk (lenient: extra bytes are
  ignored, as trailing bytes are for variable-length chunks), while a filtered one
  must not decode beyond the chunk (the pipeline refuses before allocating: bombs).
  Variable-length types: values.from_bytes of the wire=False form, decoded to at
  most codecs.MAX_DECODED_BYTES.  Any failure to decode stored bytes is a
  ServerError "damaged chunk: ..." and nothing else.
* ``to_raw(arr)`` (values.to_bytes, wire=False) then ``compress(raw)``
  (pipeline.encode) == ``encode(arr)``; split so that compression can run off the
  event loop.
* ``is_fill(arr)``: would storing arr give exactly the bytes of a never-written
  chunk?  Compared byte-wise (a NaN fill equals the same NaN; -0.0 differs from a
  0.0 fill, so it is stored: never loses data).
* ``fill_chunk()``: a new copy of the cached fill chunk.
"""
import hashlib
import json
import math
import threading
from collections import OrderedDict
from urllib.parse import urlsplit

import numpy as np

from server.core import initializers, types, values
from server.core.codecs import pipeline_for
from server.core.errors import BadRequest, ServerError

CONTIGUOUS_REF = "H5D_CONTIGUOUS_REF"
CHUNKED_REF = "H5D_CHUNKED_REF"
CHUNKED_REF_INDIRECT = "H5D_CHUNKED_REF_INDIRECT"
REF_CLASSES = (CONTIGUOUS_REF, CHUNKED_REF, CHUNKED_REF_INDIRECT)


def _nbytes(buf) -> int:
    return len(buf) if isinstance(buf, (bytes, bytearray)) else memoryview(buf).nbytes


class ChunkCodec:
    """Decoding/encoding of one dataset's chunks.

    Attributes: type, chunk_dims, shape (full array shape of a chunk), dtype (the
    array's dtype), variable, itemsize (bytes per element, None if variable),
    nbytes (raw bytes of a fixed-size chunk, None if variable), pipeline,
    pad_short (decode pads short data by default: contiguous-ref layouts)."""

    def __init__(self, type_json, chunk_dims, filters=None, fill_value_json=None,
                 fill_value_b64=None, layout_class=None, initializer=None):
        info = types.type_info(type_json)
        try:
            dims = tuple(int(d) for d in chunk_dims)
        except (TypeError, ValueError):
            raise BadRequest(f"invalid chunk dims {chunk_dims!r}")
        if any(d < 0 for d in dims):
            raise BadRequest(f"invalid chunk dims {chunk_dims!r}")
        self.type = type_json
        self.chunk_dims = dims
        self.count = math.prod(dims)
        self.shape = types.full_shape(type_json, dims)
        self.dtype = info.elem_dtype
        self.variable = bool(info.variable)
        self.itemsize = None if self.variable else info.dtype.itemsize
        self.nbytes = None if self.variable else self.count * self.itemsize
        self.pipeline = pipeline_for(filters or [], type_json)
        self.pad_short = layout_class == CONTIGUOUS_REF
        self._fill = values.fill_array(type_json, dims, fill_value_json, fill_value_b64)
        self._fill.flags.writeable = False
        self._fill_raw = values.to_bytes(self._fill, type_json, wire=False)
        self._fill_zero = not self.variable and not any(self._fill_raw)
        try:
            self.initializer = initializers.parse(initializer, type_json) \
                if len(dims) == 1 else None
        except BadRequest:      # one we cannot run (HSDS's chunklocator): fill, as HSDS
            self.initializer = None   # does when an initializer fails

    # ---- properties -------------------------------------------------------

    @property
    def compressed(self) -> bool:
        """Does (de)compression real work (worth running off the event loop)?"""
        return self.pipeline.compressed

    # ---- fill -------------------------------------------------------------

    def fill_chunk(self) -> np.ndarray:
        """A new writable chunk holding the fill value everywhere."""
        return self._fill.copy()

    def missing(self, index) -> np.ndarray:
        """A never-written chunk (grid index `index`): the initializer's values where
        the dataset has one, else the fill value. Writable."""
        if self.initializer is None:
            return self.fill_chunk()
        return self.initializer.chunk(index, self.chunk_dims, self.dtype)

    def fill_bytes(self) -> bytes:
        """Raw bytes (before filters) of the fill chunk."""
        return self._fill_raw

    def is_fill(self, arr) -> bool:
        """True when arr (a full chunk) stores exactly like a never-written chunk (never,
        with an initializer: a missing chunk would read back as its values)."""
        if self.initializer is not None:
            return False
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise BadRequest(f"chunk of shape {arr.shape}, expected {self.shape}")
        if self.variable:
            return values.to_bytes(arr, self.type, wire=False) == self._fill_raw
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        # most chunks differ from fill near the start: look there before the whole
        head = min(len(flat), 4096)
        if flat[:head].tobytes() != self._fill_raw[:head]:
            return False
        if self._fill_zero:
            return not flat.any()
        return flat.tobytes() == self._fill_raw

    # ---- decode -----------------------------------------------------------

    def decode(self, data, pad=None, writable=True) -> np.ndarray:
        """Stored bytes (None = no key) -> the full chunk array (see module doc).
        pad: zero-pad short fixed-size data (default: the layout's pad_short).
        writable=False may return a read-only zero-copy view."""
        if data is None:
            return self.fill_chunk()
        return self._decode(data, self.chunk_dims, self.pad_short if pad is None else pad,
                            writable)

    def decode_piece(self, data, shape, pad=False, writable=True) -> np.ndarray:
        """Decode stored bytes holding `shape` elements (e.g. one hyperchunk source
        chunk) with this dataset's type and filters."""
        return self._decode(data, tuple(int(d) for d in shape), pad, writable)

    def _decode(self, data, shape, pad, writable):
        if self.variable:
            raw = self.pipeline.decode(data)
            try:
                return values.from_bytes(raw, self.type, shape)
            except BadRequest as e:
                raise ServerError(f"damaged chunk: variable-length data: {e.message}") \
                    from None
        full = types.full_shape(self.type, shape)
        expected = math.prod(shape) * self.itemsize
        out = None
        if self.pipeline.compressed and writable:
            out = np.empty(full, dtype=self.dtype)
        raw = self.pipeline.decode(data, nbytes=expected, out=out)
        if out is not None and raw is out:
            return out
        size = _nbytes(raw)
        if size < expected:
            if not pad:
                raise ServerError(f"damaged chunk: {size} bytes after decoding, "
                                  f"expected {expected}")
            buf = bytearray(expected)
            buf[:size] = raw
            return np.frombuffer(buf, dtype=self.dtype).reshape(full)
        arr = np.frombuffer(raw, dtype=self.dtype, count=math.prod(full)).reshape(full)
        if writable and not arr.flags.writeable:
            arr = arr.copy()
        return arr

    # ---- encode -----------------------------------------------------------

    def to_raw(self, arr) -> bytes:
        """A full chunk array -> raw chunk bytes (§6.3/§6.4, no filters). A read-only
        array (adopted from a request body, never changed in place) is viewed, not
        copied."""
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise BadRequest(f"chunk of shape {arr.shape}, expected {self.shape}")
        if not arr.flags.writeable:
            return values.as_buffer(arr, self.type, internal=False)
        return values.to_bytes(arr, self.type, wire=False)

    def compress(self, raw):
        """Raw chunk bytes -> stored bytes (the filter pipeline)."""
        return self.pipeline.encode(raw)

    def encode(self, arr):
        """A full chunk array -> stored bytes."""
        return self.pipeline.encode(self.to_raw(arr))


# ---- per-dataset cache --------------------------------------------------------

_CACHE_SIZE = 2048
_cache: "OrderedDict[tuple, ChunkCodec]" = OrderedDict()
_cache_lock = threading.Lock()


def _doc_parts(dset_doc: dict):
    cprops = dset_doc.get("creationProperties") or {}
    fill = cprops.get("fillValue")
    encoding = cprops.get("fillValue_encoding")
    layout = cprops.get("layout") or dset_doc.get("layout") or {}
    return (dset_doc.get("type"), cprops.get("filters") or [], fill, encoding,
            layout.get("class") if isinstance(layout, dict) else None,
            cprops.get("initializer"), dset_doc.get("layout"), cprops.get("layout"))


def codec_for(dset_doc: dict, chunk_dims=None) -> ChunkCodec:
    """The (cached) ChunkCodec of a dataset document.  chunk_dims: the effective
    chunk dims (computed by the caller; default: server.core.layout.chunk_dims_of).
    Cached by dataset id + a hash of type, layouts, filters, fill and chunk dims."""
    if not isinstance(dset_doc, dict) or "type" not in dset_doc:
        raise BadRequest("invalid dataset document")
    if chunk_dims is None:
        from server.core.layout import chunk_dims_of
        chunk_dims = chunk_dims_of(dset_doc)
    parts = _doc_parts(dset_doc)
    try:
        text = json.dumps([parts, list(chunk_dims)], sort_keys=True, default=str)
    except (TypeError, ValueError):
        raise BadRequest("invalid dataset document")
    key = (dset_doc.get("id"), hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
    with _cache_lock:
        codec = _cache.get(key)
        if codec is not None:
            _cache.move_to_end(key)
            return codec
    type_json, filters, fill, encoding, layout_class, initializer = parts[:6]
    if fill is not None and encoding is not None:
        if encoding != "base64":
            raise BadRequest(f"unsupported fillValue_encoding {encoding!r}")
        codec = ChunkCodec(type_json, chunk_dims, filters, fill_value_b64=fill,
                           layout_class=layout_class, initializer=initializer)
    else:
        codec = ChunkCodec(type_json, chunk_dims, filters, fill_value_json=fill,
                           layout_class=layout_class, initializer=initializer)
    with _cache_lock:
        _cache[key] = codec
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return codec


# ---- reference layouts (STORAGE.md §7) ----------------------------------------

def _int(v, what) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise BadRequest(f"invalid {what}: {v!r}")
    return int(v)


def contiguous_ref_range(layout: dict, index, chunk_dims, dims, item_size) -> tuple:
    """(offset, length) of virtual chunk `index` of an H5D_CONTIGUOUS_REF layout:
    offset + sum_d k_d * c_d * stride_d (C-order strides of the dataset dims);
    length prod(chunk dims) x itemsize, clipped to the layout's [offset, offset +
    size) when `size` is given (so the edge chunk reads short and is padded).
    The chunk dims must give contiguous ranges (1 ... 1, n, full extents)."""
    base = _int(layout.get("offset"), "layout offset")
    itemsize = _int(item_size, "item size")
    index, chunk_dims, dims = tuple(index), tuple(chunk_dims), tuple(dims)
    if not (len(index) == len(chunk_dims) == len(dims)):
        raise BadRequest("chunk index, chunk dims and dims differ in rank")
    if math.prod(dims) and not _contiguous(chunk_dims, dims):
        raise BadRequest(f"chunk dims {list(chunk_dims)} do not give contiguous ranges "
                         f"of {list(dims)}")
    stride = itemsize
    offset = base
    for k, c, n in zip(reversed(index), reversed(chunk_dims), reversed(dims)):
        offset += k * c * stride
        stride *= n
    length = math.prod(chunk_dims) * itemsize
    size = layout.get("size")
    if size is not None:
        end = base + _int(size, "layout size")
        length = max(0, min(length, end - offset))
    return offset, length


def _contiguous(chunk_dims, dims) -> bool:
    split = next((d for d, c in enumerate(chunk_dims) if c != 1), len(dims))
    return all(chunk_dims[d] == dims[d] for d in range(split + 1, len(dims)))


def chunk_index_key(index) -> str:
    return "_".join(str(int(i)) for i in index)


def chunked_ref_range(layout: dict, index):
    """(offset, size) of chunk `index` in an H5D_CHUNKED_REF layout's `chunks`
    map, or None when the chunk is not listed (or has size 0): unallocated."""
    chunks = layout.get("chunks")
    if not isinstance(chunks, dict):
        raise BadRequest("H5D_CHUNKED_REF layout without a 'chunks' map")
    entry = chunks.get(chunk_index_key(index))
    if entry is None:
        return None
    if not isinstance(entry, (list, tuple)) or len(entry) < 2:
        raise BadRequest(f"invalid chunk location {entry!r}")
    offset, size = _int(entry[0], "chunk offset"), _int(entry[1], "chunk size")
    if size <= 0:
        return None
    return offset, size


def indirect_entry(table_row) -> tuple:
    """(file_uri or None, offset, size) of one chunk-table element (a record of the
    table's compound type: offset, size[, file_uri]).  size 0 = unallocated."""
    try:
        items = table_row.tolist() if isinstance(table_row, (np.void, np.ndarray)) \
            else tuple(table_row)
    except TypeError:
        raise BadRequest("invalid chunk table entry")
    if not isinstance(items, (list, tuple)) or len(items) < 2:
        raise BadRequest("invalid chunk table entry")
    offset, size = int(items[0]), int(items[1])
    uri = None
    if len(items) > 2 and items[2] is not None:
        raw = items[2]
        if isinstance(raw, (bytes, np.bytes_)):
            raw = bytes(raw).split(b"\x00", 1)[0].decode("utf-8", "replace")
        uri = str(raw).strip() or None
    return uri, offset, size


def hyper_pieces(index, dims, hyper_dims=None, table_shape=None) -> list:
    """Where the source chunks of HSDS chunk `index` are: a list of
    (chunk-table index, slices inside the chunk).  dims: the layout's chunk dims;
    hyper_dims (each dividing dims) the source chunk dims -- None means one piece,
    the whole chunk.  With table_shape, pieces outside the table are left out."""
    index, dims = tuple(int(i) for i in index), tuple(int(d) for d in dims)
    if len(index) != len(dims):
        raise BadRequest("chunk index and chunk dims differ in rank")
    hyper = dims if hyper_dims is None else tuple(int(h) for h in hyper_dims)
    if len(hyper) != len(dims) or any(h <= 0 or d % h for h, d in zip(hyper, dims)):
        raise BadRequest(f"hyper_dims {list(hyper)} must divide the chunk dims {list(dims)}")
    ratios = [d // h for d, h in zip(dims, hyper)]
    out = []
    for pos in np.ndindex(*ratios):
        table = tuple(k * r + p for k, r, p in zip(index, ratios, pos))
        if table_shape is not None and any(t >= s for t, s in zip(table, table_shape)):
            continue
        slices = tuple(slice(p * h, (p + 1) * h) for p, h in zip(pos, hyper))
        out.append((table, slices))
    return out


def split_uri(uri: str) -> tuple:
    """(bucket, key) of a reference layout's file_uri: "bucket/key" (POSIX and
    S3 alike), "s3://bucket/key" (any scheme://bucket/key), or an http(s) URL
    whose first path component is the bucket/container (the Azure form
    https://<account>.blob.core.windows.net/<container>/<key>)."""
    if not isinstance(uri, str) or not uri:
        raise BadRequest(f"invalid file_uri {uri!r}")
    if "://" in uri:
        parts = urlsplit(uri)
        if parts.scheme in ("http", "https"):
            path = parts.path.lstrip("/")
        else:
            path = parts.netloc + "/" + parts.path.lstrip("/")
    else:
        path = uri.lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise BadRequest(f"file_uri {uri!r} does not name a bucket and a key")
    return bucket, key

