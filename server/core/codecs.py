"""The filter pipeline applied to stored chunk bytes (STORAGE.md §6.5, REST_API.md §10.3).

Pure functions and objects, no I/O.  ``pipeline_for(filters, type_json)`` gives a
cached ``Pipeline`` whose ``encode`` turns raw chunk bytes (§6.3/§6.4) into what is
stored and whose ``decode`` does the reverse:

* compressor = the FIRST filter whose class is DEFLATE, SZIP, SCALEOFFSET, LZF,
  BLOSC, SNAPPY, LZ4, LZ4HC or ZSTD (or H5Z_FILTER_USER naming one of those);
  DEFLATE -> blosc codec ``zlib``, the others -> their name; level = the filter's
  ``level`` or 5.  SCALEOFFSET is accepted but not applied and, being a
  "compressor", hides any later one: such chunks are stored raw.
* shuffle = an H5Z_FILTER_SHUFFLE filter exists and the type is not variable-length;
  its kind is decided by the FIRST such filter's name, as HSDS 1.0.2 does: named
  "bitshuffle" -> bitshuffle-LZ4 (``bitshuffle_lz4``), any other name -> byte shuffle.
* fletcher32, nbit and H5Z_FILTER_BITSHUFFLE: no transformation (HSDS 1.0.2 accepts
  the bitshuffle filter -- what h5pyd sends -- and stores chunks as if it were
  absent; verified by running it).

Write: with bitshuffle_lz4, the raw bytes first become a bitshuffle-LZ4 blob (the
format of the bitshuffle HDF5 filter's LZ4 mode, 2048-element blocks, behind a
12-byte header -- byte for byte what HSDS writes); then one blosc1 frame (cname,
clevel, byte-shuffle flag if shuffle, typesize 1, automatic block size) -- or,
without a compressor, the bytes as they are (the same object, zero-copy, when no
blob is made), even when byte shuffle is listed.

Read: with a compressor, a valid blosc1 frame is blosc-decompressed whatever its
codec; otherwise a zlib/gzip stream (DEFLATE) or a zstd frame (ZSTD) -- the formats
of classic HDF5 files, read through reference layouts -- is decompressed and then
byte-unshuffled (typesize = itemsize) if shuffle is listed, as the HDF5 filters
stored it; anything else is taken as raw bytes.  Shuffle without a compressor is a
no-op both ways (that reads HSDS-written bytes correctly, §6.5).  Then, with
bitshuffle_lz4, the blob is decoded; HSDS 0.9 chunks of a dataset listing
H5Z_FILTER_BITSHUFFLE (the same blobs, which 0.9 wrote) are recognised by their
header and length and decoded.  The bit transposes are numpy-vectorised (8x8 bit
matrix transposes on u64 words, many blocks at a time); LZ4 is numcodecs'.

Bounded decoding: no step's output grows beyond the chunk's expected size (plus a
small, fixed slack for a bitshuffle-LZ4 blob's framing): a blosc1 frame's header size
is checked before anything is decompressed, zlib streams inflate with a length cap
(decompressobj max_length, never flush), a zstd frame's declared content size is
checked and the frame is decompressed one-shot into at most the limit, and each LZ4
block of a blob inflates into its fixed block.  Variable-length chunks, whose size
is not known, are capped at MAX_DECODED_BYTES.

Errors: stored bytes that are not what the pipeline stores -- a frame that inflates
beyond the chunk (a decompression bomb), a damaged or truncated frame, stream or
blob, a frame of another codec, or bytes that are no frame at all and not exactly
the chunk's size -> ServerError (500) "damaged chunk: ...", a data fault in storage
that concerns the one request reading it.  A compressor this build cannot write
(snappy, lzf, szip) -> BadRequest on encode.

Threads: blosc runs single-threaded with a context per call (``numcodecs.blosc.
use_threads = False``), so the chunks a request touches are (de)compressed side by side
in the executor's threads. Blosc's own threads share one global context, one call at a
time per process: measured here, 32 deflate chunks in a pool of 2 decoded at 149 MiB/s
that way against 251 with per-call contexts (and 97 against 170 one at a time).
``configure_threads`` changes that.
"""
import json
import struct
import threading
import zlib
from functools import lru_cache

import numpy as np
from numcodecs import blosc as _blosc

from server.core.bitshuffle import (bitshuffle_lz4_decode, bitshuffle_lz4_encode,
                                     blob_bound, is_bitshuffle_blob)
from server.core.errors import BadRequest, ServerError
from server.core.types import item_size, is_variable

try:                                    # optional: raw zstd frames from HDF5 files
    import zstandard as _zstd
except ImportError:                     # pragma: no cover
    _zstd = None

DEFAULT_LEVEL = 5

# filter class -> default compressor name (the name used when the filter has none)
COMPRESSOR_CLASSES = {
    "H5Z_FILTER_DEFLATE": "zlib",
    "H5Z_FILTER_SZIP": "szip",
    "H5Z_FILTER_SCALEOFFSET": "scaleoffset",
    "H5Z_FILTER_LZF": "lzf",
    "H5Z_FILTER_BLOSC": "blosclz",
    "H5Z_FILTER_SNAPPY": "snappy",
    "H5Z_FILTER_LZ4": "lz4",
    "H5Z_FILTER_LZ4HC": "lz4hc",
    "H5Z_FILTER_ZSTD": "zstd",
}
# names an H5Z_FILTER_USER filter may carry to act as a compressor (HSDS 0.9)
_USER_NAMES = {"gzip": "zlib", "deflate": "zlib", "zlib": "zlib", "szip": "szip",
               "scaleoffset": "scaleoffset", "lzf": "lzf", "blosclz": "blosclz",
               "blosc": "blosclz", "snappy": "snappy", "lz4": "lz4", "lz4hc": "lz4hc",
               "zstd": "zstd"}
# compressors whose chunks are stored without any transformation
_RAW_COMPRESSORS = frozenset({"scaleoffset"})
BLOSC_CODECS = frozenset(_blosc.list_compressors())

# blosc1 header (STORAGE.md §6.5)
_HEADER = struct.Struct("<BBBBIII")
BLOSC_HEADER_SIZE = 16
_FLAG_SHUFFLE = 0x01
_FLAG_MEMCPYED = 0x02
_FLAG_BITSHUFFLE = 0x04
_CODEC_NAMES = {0: "blosclz", 1: "lz4", 2: "snappy", 3: "zlib", 4: "zstd"}
_MAX_NBYTES = 2 ** 31 - 1 - BLOSC_HEADER_SIZE

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# the most a variable-length chunk (no fixed size) may decode to; fixed-size chunks
# are bounded by their own size
MAX_DECODED_BYTES = 256 * 1024 * 1024


def _damaged(message: str) -> ServerError:
    return ServerError(f"damaged chunk: {message}")


# ---- DEFLATE frames with zlib-ng ------------------------------------------------

try:                                    # zlib-ng: the same streams, several times faster
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:                     # pragma: no cover
    _zlib_ng = None

ZLIB_BLOCK = 256 * 1024                 # blosc's automatic block size for zlib
_U32 = struct.Struct("<I")


def zlib_frame(raw, level: int, shuffle: bool) -> bytes:
    """One blosc1 frame (typesize 1, codec zlib) whose blocks are compressed with
    zlib-ng: byte-identical format to what blosc writes, read by any blosc decoder
    (HSDS's included), at several times zlib's speed. Blocks that do not shrink are
    stored as they are (a stream whose size equals the block's), as blosc does."""
    data = memoryview(raw).cast("B") if not isinstance(raw, bytes) else raw
    nbytes = len(data)
    flags = (3 << 5) | (_FLAG_SHUFFLE if shuffle else 0)
    nblocks = -(-nbytes // ZLIB_BLOCK)
    blocks = []
    for i in range(nblocks):
        block = data[i * ZLIB_BLOCK:(i + 1) * ZLIB_BLOCK]
        packed = _zlib_ng.compress(block, level)
        blocks.append(packed if len(packed) < len(block) else bytes(block))
    table = BLOSC_HEADER_SIZE + 4 * nblocks
    starts, pos = [], table
    for b in blocks:
        starts.append(pos)
        pos += 4 + len(b)
    if pos >= nbytes + BLOSC_HEADER_SIZE:        # no gain: store the bytes as they are
        return _HEADER.pack(2, 1, flags | _FLAG_MEMCPYED, 1, nbytes, nbytes,
                            nbytes + BLOSC_HEADER_SIZE) + bytes(data)
    parts = [_HEADER.pack(2, 1, flags, 1, nbytes, min(ZLIB_BLOCK, nbytes), pos),
             b"".join(_U32.pack(s) for s in starts)]
    for b in blocks:
        parts += [_U32.pack(len(b)), b]
    return b"".join(parts)


# ---- threads ----------------------------------------------------------------

_threads_lock = threading.Lock()


def configure_threads(nthreads=None) -> int:
    """Let blosc use `nthreads` threads (default 1).  With 1 thread numcodecs' per-call
    contexts are used (parallel across calling threads)."""
    n = max(1, int(nthreads or 1))
    with _threads_lock:
        _blosc.set_nthreads(n)
        _blosc.use_threads = n > 1
    return n


configure_threads()


# ---- blosc1 frames ------------------------------------------------------------

def blosc_header(data):
    """The parsed blosc1 header of `data` if it is a plausible complete blosc1 frame,
    else None: dict(version, versionlz, flags, typesize, nbytes, blocksize, cbytes,
    codec, shuffle, bitshuffle, memcpyed)."""
    if data is None or len(data) < BLOSC_HEADER_SIZE:
        return None
    version, versionlz, flags, typesize, nbytes, blocksize, cbytes = \
        _HEADER.unpack_from(data, 0)
    if version > 2 or typesize < 1 or cbytes != len(data) or nbytes > _MAX_NBYTES:
        return None
    codec = flags >> 5
    if codec not in _CODEC_NAMES:
        return None
    memcpyed = bool(flags & _FLAG_MEMCPYED)
    if memcpyed:
        if cbytes != nbytes + BLOSC_HEADER_SIZE:
            return None
    elif nbytes:
        if blocksize < 1:
            return None
        nblocks = -(-nbytes // blocksize)
        if BLOSC_HEADER_SIZE + 4 * nblocks > cbytes:
            return None
    return {"version": version, "versionlz": versionlz, "flags": flags,
            "typesize": typesize, "nbytes": nbytes, "blocksize": blocksize,
            "cbytes": cbytes, "codec": _CODEC_NAMES[codec],
            "shuffle": bool(flags & _FLAG_SHUFFLE),
            "bitshuffle": bool(flags & _FLAG_BITSHUFFLE), "memcpyed": memcpyed}


def _blosc_decode(buf, header, out, limit: int):
    """Decompress a blosc1 frame; into `out` (a writable C-contiguous ndarray of
    exactly nbytes) when given, returning it, else returning bytes.  A frame holding
    more than `limit` bytes is refused before anything is allocated."""
    if header["nbytes"] > limit:
        raise _damaged(f"blosc frame ({header['codec']}) inflates beyond {limit} bytes: "
                       f"its header says {header['nbytes']}")
    if header["nbytes"] == 0:
        return out if out is not None else b""
    if header["codec"] == "zlib" and header["typesize"] == 1 and _zlib_ng is not None \
            and not header["memcpyed"]:
        return _zlib_frame_decode(buf, header, out)
    try:
        if out is not None:
            _blosc.decompress(buf, out)
            return out
        return _blosc.decompress(buf)
    except Exception as e:      # numcodecs raises RuntimeError on damaged frames
        raise _damaged(f"cannot decompress blosc frame ({header['codec']}): {e}")


def _zlib_frame_decode(buf, header, out):
    """A zlib frame of typesize 1 (what zlib_frame writes: one stream per block, or the
    block's own bytes where it did not shrink) inflated by zlib-ng, block by block:
    about 1.3x blosc's inflate here, and, unlike blosc's global context, free to run in
    several threads at once."""
    nbytes, step = header["nbytes"], header["blocksize"]
    nblocks = -(-nbytes // step)
    dest = out if out is not None else bytearray(nbytes)
    into = memoryview(dest).cast("B")
    data = memoryview(buf)
    try:
        starts = struct.unpack_from(f"<{nblocks}I", data, BLOSC_HEADER_SIZE)
        for i, start in enumerate(starts):
            size = min(step, nbytes - i * step)
            (csize,) = _U32.unpack_from(data, start)
            block = data[start + 4:start + 4 + csize]
            if len(block) != csize:
                raise ValueError("block past the frame's end")
            if csize == size:             # stored as it was
                into[i * step:i * step + size] = block
                continue
            inflate = _zlib_ng.decompressobj()
            got = inflate.decompress(block, size)
            if len(got) != size or not inflate.eof:
                raise ValueError(f"block {i} inflates to {len(got)} bytes, not {size}")
            into[i * step:i * step + size] = got
    except (struct.error, ValueError, _zlib_ng.error) as e:
        raise _damaged(f"cannot decompress blosc frame (zlib): {e}")
    return dest


# ---- zlib / zstd streams (classic HDF5 filters) -------------------------------

def _is_zlib(buf) -> bool:
    if len(buf) < 2:
        return False
    b0, b1 = buf[0], buf[1]
    if b0 == 0x1F and b1 == 0x8B:                         # gzip
        return True
    return (b0 & 0x0F) == 8 and (b0 >> 4) <= 7 and ((b0 << 8) | b1) % 31 == 0


_ZLIB_STEP = 256 * 1024         # stored bytes fed to zlib at a time


def _zlib_decode(buf, limit: int) -> bytes:
    """A zlib or gzip stream inflated to at most `limit` bytes (more: a bomb).  The
    input goes in by pieces, so neither the output nor zlib's copy of unconsumed
    input (unconsumed_tail) grows beyond a bounded size."""
    d = zlib.decompressobj(wbits=47)                      # zlib or gzip header
    mv = memoryview(buf).cast("B")
    parts, produced = [], 0
    try:
        for pos in range(0, len(mv), _ZLIB_STEP):
            # max_length caps the output (0 would mean no cap); never flush(), which
            # inflates whatever input is left without one
            out = d.decompress(mv[pos:pos + _ZLIB_STEP], limit + 1 - produced)
            produced += len(out)
            if produced > limit:
                raise _damaged(f"zlib stream inflates beyond {limit} bytes")
            parts.append(out)
            if d.eof:
                break
    except zlib.error as e:
        raise _damaged(f"cannot decompress zlib stream: {e}")
    if not d.eof:
        raise _damaged("truncated zlib stream")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _zstd_decode(buf, limit: int) -> bytes:
    """A zstd frame decompressed to at most `limit` bytes: a declared content size is
    checked first (zstandard would allocate it whatever max_output_size says); an
    undeclared one is decompressed one-shot into a buffer of `limit` bytes."""
    data = buf if isinstance(buf, bytes) else bytes(buf)
    try:
        size = _zstd.frame_content_size(data)
    except _zstd.ZstdError as e:
        raise _damaged(f"cannot decompress zstd frame: {e}")
    if size > limit:
        raise _damaged(f"zstd frame inflates beyond {limit} bytes: its header says {size}")
    try:
        return _zstd.ZstdDecompressor().decompress(data, max_output_size=max(limit, 1))
    except _zstd.ZstdError as e:
        more = f" (or inflates beyond {limit} bytes)" if size < 0 else ""
        raise _damaged(f"cannot decompress zstd frame{more}: {e}")


def byte_unshuffle(buf, itemsize: int) -> bytes:
    """Undo the HDF5 shuffle filter: byte planes -> elements (a trailing partial
    element is left as it is, as the filter does)."""
    return _transpose_bytes(buf, itemsize, planes_in=True)


def byte_shuffle(buf, itemsize: int) -> bytes:
    """The HDF5 shuffle filter (the inverse of byte_unshuffle)."""
    return _transpose_bytes(buf, itemsize, planes_in=False)


def _transpose_bytes(buf, itemsize: int, planes_in: bool) -> bytes:
    """The n x itemsize byte matrix of the whole elements, transposed (one way or the
    other); the tail of a partial element unchanged."""
    n = len(buf) // itemsize if itemsize > 1 else 0
    if n < 2:
        return bytes(buf)
    a = np.frombuffer(buf, dtype=np.uint8)
    shape = (itemsize, n) if planes_in else (n, itemsize)
    return a[:n * itemsize].reshape(shape).T.tobytes() + a[n * itemsize:].tobytes()


# ---- the pipeline -------------------------------------------------------------

def _filter_name(f) -> str:
    name = f.get("name")
    return name.lower() if isinstance(name, str) else ""


def _compressor_of(f):
    """(compressor name, level) if the filter object is a compression filter."""
    cls = f.get("class")
    if cls in COMPRESSOR_CLASSES:
        if cls == "H5Z_FILTER_DEFLATE":
            name = "zlib"
        else:
            name = _filter_name(f) or COMPRESSOR_CLASSES[cls]
            name = _USER_NAMES.get(name, name)
    elif cls == "H5Z_FILTER_USER" and _filter_name(f) in _USER_NAMES:
        name = _USER_NAMES[_filter_name(f)]
    else:
        return None
    level = f.get("level", DEFAULT_LEVEL)
    if isinstance(level, bool) or not isinstance(level, (int, float)):
        level = DEFAULT_LEVEL
    return name, min(max(int(level), 0), 9)


class Pipeline:
    """The stored-bytes transformation of one (filters, type) combination.

    compressor: name of the first compression filter (None without one);
    cname: the blosc codec written (None when chunks are stored raw);
    level; shuffle (byte shuffle: blosc's flag, or the HDF5 filter on raw streams);
    bitshuffle_lz4 (chunks are bitshuffle-LZ4 blobs: the first H5Z_FILTER_SHUFFLE
    filter is named "bitshuffle", as HSDS 1.0.2 understands it);
    bitshuffle (an H5Z_FILTER_BITSHUFFLE filter: no transformation on write, as
    HSDS 1.0.2; HSDS 0.9 blobs are recognised on read); itemsize (None for
    variable-length types), variable."""

    __slots__ = ("compressor", "cname", "level", "shuffle", "bitshuffle", "bitshuffle_lz4",
                 "itemsize", "variable")

    def __init__(self, filters, type_json):
        if filters is None:
            filters = []
        if not isinstance(filters, list):
            raise BadRequest("filters must be a list")
        self.variable = bool(is_variable(type_json))
        self.itemsize = None if self.variable else item_size(type_json)
        self.compressor = None
        self.level = DEFAULT_LEVEL
        shuffle_name = None             # name of the first H5Z_FILTER_SHUFFLE filter
        has_bitshuffle = False
        for f in filters:
            if not isinstance(f, dict):
                continue
            cls = f.get("class")
            if cls == "H5Z_FILTER_SHUFFLE":
                if shuffle_name is None:
                    shuffle_name = _filter_name(f)
            elif cls == "H5Z_FILTER_BITSHUFFLE" or (
                    cls == "H5Z_FILTER_USER" and _filter_name(f) == "bitshuffle"):
                has_bitshuffle = True
            elif self.compressor is None:
                found = _compressor_of(f)
                if found:
                    self.compressor, self.level = found
        fixed = not self.variable
        self.bitshuffle_lz4 = fixed and shuffle_name == "bitshuffle"
        self.shuffle = fixed and shuffle_name is not None and not self.bitshuffle_lz4
        self.bitshuffle = fixed and has_bitshuffle
        self.cname = (self.compressor if self.compressor not in _RAW_COMPRESSORS
                      else None)

    @property
    def compressed(self) -> bool:
        """Is encode/decode real work (blosc frames or bitshuffle-LZ4 blobs)?"""
        return self.cname is not None or self.bitshuffle_lz4

    @property
    def identity(self) -> bool:
        """Do encode and decode return their input unchanged?"""
        return self.cname is None and not self.bitshuffle and not self.bitshuffle_lz4

    def __repr__(self):
        return (f"Pipeline(compressor={self.compressor!r}, level={self.level}, "
                f"shuffle={self.shuffle}, bitshuffle={self.bitshuffle}, "
                f"bitshuffle_lz4={self.bitshuffle_lz4}, itemsize={self.itemsize})")

    def encode(self, raw):
        """Raw chunk bytes -> stored bytes (the input itself when nothing applies)."""
        if self.cname is not None and self.cname not in BLOSC_CODECS:
            raise BadRequest(f"compressor {self.cname!r} is not supported for writing")
        if self.bitshuffle_lz4:
            raw = bitshuffle_lz4_encode(raw, self.itemsize)
        if self.cname is None:
            return raw
        if self.cname == "zlib" and _zlib_ng is not None and len(raw):
            return zlib_frame(raw, self.level, self.shuffle)
        shuffle = _blosc.SHUFFLE if self.shuffle else _blosc.NOSHUFFLE
        return _blosc.compress(raw, self.cname.encode("ascii"), self.level, shuffle,
                               _blosc.AUTOBLOCKS, 1)

    def decode(self, data, nbytes=None, out=None):
        """Stored bytes -> raw chunk bytes.

        nbytes: the expected raw size if known (fixed-size types): it bounds what
        decoding may allocate, recognises bitshuffle-LZ4 blobs, and bytes that are
        no frame are taken raw only at exactly that size.  Without it (variable-length
        types) decoding stops at MAX_DECODED_BYTES.  out: an optional writable
        C-contiguous ndarray that a blosc frame or blob of exactly out.nbytes is
        decoded into (then `out` itself is returned).  Otherwise the result is a
        bytes-like object -- the input itself when nothing had to be done.
        Damaged or hostile bytes -> ServerError "damaged chunk: ..."."""
        if self.identity or data is None:
            return data
        if out is not None and not (out.flags.c_contiguous and out.flags.writeable):
            out = None
        limit = MAX_DECODED_BYTES if nbytes is None else nbytes
        # what the compressor may produce: the chunk, or a blob of it (a little larger)
        frame_limit = limit
        if self.bitshuffle_lz4 or self.bitshuffle:
            frame_limit = blob_bound(limit, self.itemsize)
        buf = data
        decoded = False
        if self.cname is not None:
            mv = data if isinstance(data, (bytes, bytearray)) else memoryview(data).cast("B")
            header = blosc_header(mv)
            if header is not None:
                if (out is not None and header["nbytes"] == out.nbytes
                        and not self.bitshuffle_lz4):
                    return _blosc_decode(mv, header, out, frame_limit)
                buf = _blosc_decode(mv, header, None, frame_limit)
                decoded = True
            elif self.cname == "zlib" and _is_zlib(mv):
                buf = self._unshuffle(_zlib_decode(mv, frame_limit))
                decoded = True
            elif self.cname == "zstd" and _zstd is not None and mv[:4] == _ZSTD_MAGIC:
                buf = self._unshuffle(_zstd_decode(mv, frame_limit))
                decoded = True
        if self.bitshuffle_lz4:
            # HSDS always stores blobs here; anything else is taken as raw bytes
            if is_bitshuffle_blob(buf, self.itemsize, nbytes, same_size_ok=True):
                return bitshuffle_lz4_decode(buf, self.itemsize, out, limit)
        elif self.bitshuffle and is_bitshuffle_blob(buf, self.itemsize, nbytes):
            return bitshuffle_lz4_decode(buf, self.itemsize, out, limit)
        if not decoded and nbytes is not None and _size(buf) > nbytes:
            # no frame, and more than the chunk: not raw bytes of it either (a damaged
            # frame or one of another codec); shorter ones are the caller's to judge
            what = f"a {self.cname} frame" if self.cname else "a bitshuffle-LZ4 blob"
            raise _damaged(f"{_size(buf)} bytes that are not {what} "
                           f"nor the chunk's {nbytes} raw bytes")
        if decoded and _size(buf) > limit:
            raise _damaged(f"{self.cname} frame inflates beyond {limit} bytes")
        return buf

    def _unshuffle(self, raw):
        if self.shuffle and self.itemsize and self.itemsize > 1:
            return byte_unshuffle(raw, self.itemsize)
        return raw


def _size(buf) -> int:
    return len(buf) if isinstance(buf, (bytes, bytearray)) else memoryview(buf).nbytes


def _cache_key(filters, type_json) -> str:
    try:
        return json.dumps([filters or [], type_json], sort_keys=True, allow_nan=True)
    except (TypeError, ValueError):
        raise BadRequest("invalid filters or type")


@lru_cache(maxsize=1024)
def _pipeline_cached(key: str) -> Pipeline:
    filters, type_json = json.loads(key)
    return Pipeline(filters, type_json)


def pipeline_for(filters, type_json) -> Pipeline:
    """The (cached) Pipeline for a dataset's filter list and type."""
    return _pipeline_cached(_cache_key(filters, type_json))
