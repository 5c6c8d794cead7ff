"""Bitshuffle-LZ4 blobs: the chunk format of the bitshuffle HDF5 filter in LZ4 mode,
which HSDS 1.0.2 writes for a shuffle filter named "bitshuffle" and HSDS 0.9 wrote for
H5Z_FILTER_BITSHUFFLE (STORAGE.md §6.5). Pure numpy (vectorised bit transposes) and
numcodecs' LZ4; used by the filter pipeline in core.codecs.
"""
import struct

import numpy as np
from numcodecs import lz4 as _lz4

from server.core.errors import ServerError

_MAX_NBYTES = 2 ** 31 - 1 - 16          # the largest chunk a blosc1 frame can hold
_BSHUF_HEADER = struct.Struct(">QI")
_BSHUF_BLOCK_LEN = struct.Struct(">I")
_LZ4_PREFIX = struct.Struct("<I")

# # The format of the bitshuffle HDF5 filter in LZ4 mode: a 12-byte big-endian header
# (u64 raw bytes, u32 block size in bytes), then per block of `block` elements a u32
# big-endian length and one LZ4 block of the bit-transposed elements, then a last
# block of the remaining elements rounded down to a multiple of 8, then the last
# (count % 8) elements' bytes verbatim.  Within a block of n elements the transposed
# bytes are itemsize x 8 rows of n bits: row (b, j) holds bit j of byte b of every
# element, element k at bit k % 8 of byte k // 8.

BITSHUFFLE_BLOCK = 2048                 # elements per block (HSDS bit_shuffle_default_blocksize)
_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28 = np.uint64(7), np.uint64(14), np.uint64(28)
_U8LE = np.dtype("<u8")
_BATCH = 1 << 20                        # raw bytes per vectorised batch of blocks


def _transpose_8x8(x: np.ndarray) -> np.ndarray:
    """Each little-endian u64 as an 8x8 bit matrix (byte i = row i, bit j = column j),
    transposed: byte j of the result holds bit j of the 8 input bytes (bit i from
    byte i).  Its own inverse."""
    t = (x ^ (x >> _S7)) & _M1
    x = x ^ t ^ (t << _S7)
    t = (x ^ (x >> _S14)) & _M2
    x = x ^ t ^ (t << _S14)
    t = (x ^ (x >> _S28)) & _M3
    return x ^ t ^ (t << _S28)


def bit_shuffle(elems, count: int, itemsize: int) -> np.ndarray:
    """bitshuffle's transpose of `count` elements (count a multiple of 8), given as
    uint8 of shape (..., count * itemsize) -- leading axes are independent blocks:
    returns uint8 of the same shape holding the bit rows (see above)."""
    a = np.asarray(elems, dtype=np.uint8)
    lead = a.shape[:-1]
    by_byte = np.ascontiguousarray(
        a.reshape(lead + (count, itemsize)).swapaxes(-1, -2))       # (..., itemsize, count)
    x = _transpose_8x8(by_byte.view(_U8LE))                           # (..., itemsize, count/8)
    rows = x.view(np.uint8).reshape(lead + (itemsize, count // 8, 8)).swapaxes(-1, -2)
    return np.ascontiguousarray(rows).reshape(a.shape)


def bit_unshuffle(planes, count: int, itemsize: int) -> np.ndarray:
    """The inverse of bit_shuffle: bit rows of `count` elements (count a multiple of
    8), uint8 of shape (..., count * itemsize) -> the elements' bytes, same shape."""
    a = np.frombuffer(planes, dtype=np.uint8) if not isinstance(planes, np.ndarray) \
        else planes
    lead = a.shape[:-1] if a.ndim > 1 else ()
    rows = a.reshape(lead + (itemsize, 8, count // 8)).swapaxes(-1, -2)
    x = _transpose_8x8(np.ascontiguousarray(rows).view(_U8LE))       # (..., itemsize, count/8, 1)
    by_byte = x.view(np.uint8).reshape(lead + (itemsize, count))
    return np.ascontiguousarray(by_byte.swapaxes(-1, -2)).reshape(lead + (count * itemsize,))


def _block_sizes(count: int, block: int) -> tuple:
    """(number of full blocks, elements in the last short block, leftover elements)."""
    full = count // block
    rest = count - full * block
    leftover = rest % 8
    return full, rest - leftover, leftover


def is_bitshuffle_blob(buf, itemsize: int, nbytes=None, same_size_ok=False) -> bool:
    """Does `buf` look like a bitshuffle-LZ4 blob?  With `nbytes` (the expected raw
    chunk size): the header's size equals nbytes and -- unless same_size_ok (blobs
    are what the pipeline stores) -- the length differs from it (an HSDS 0.9 blob
    among raw 1.0.2 chunks).  Without: the header is self-consistent."""
    if buf is None or len(buf) < _BSHUF_HEADER.size:
        return False
    total, block_bytes = _BSHUF_HEADER.unpack_from(buf, 0)
    if nbytes is not None:
        return total == nbytes and (same_size_ok or len(buf) != nbytes)
    return (0 < total <= _MAX_NBYTES and len(buf) != total and itemsize > 0
            and total % itemsize == 0 and block_bytes > 0 and block_bytes % itemsize == 0
            and (block_bytes // itemsize) % 8 == 0)


def blob_bound(nbytes: int, itemsize) -> int:
    """The most bytes a bitshuffle-LZ4 blob of nbytes raw bytes can take: the header,
    and per block a length and LZ4's worst case (n + n/255 + 16), for blocks of at
    least 128 elements (bitshuffle's smallest recommended; HSDS writes 2048)."""
    itemsize = max(1, int(itemsize or 1))
    blocks = nbytes // (128 * itemsize) + 2
    return _BSHUF_HEADER.size + nbytes + nbytes // 255 + 20 * blocks + 8 * itemsize


def bitshuffle_lz4_encode(raw, itemsize: int, block: int = BITSHUFFLE_BLOCK) -> bytes:
    """Raw chunk bytes -> a bitshuffle-LZ4 blob, byte for byte what HSDS 1.0.2
    stores for a shuffle filter named "bitshuffle" (bitshuffle.compress_lz4 with
    2048-element blocks, behind the 12-byte header).  A trailing partial element
    is kept verbatim with the leftover elements."""
    a = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) \
        else raw.reshape(-1).view(np.uint8)
    count = len(a) // itemsize
    full, last, _ = _block_sizes(count, block)
    block_bytes = block * itemsize
    parts = [_BSHUF_HEADER.pack(len(a), block_bytes)]

    def emit(shuffled_rows):
        for row in shuffled_rows:
            packed = _lz4.compress(row)                     # u32 LE size + LZ4 block
            parts.append(_BSHUF_BLOCK_LEN.pack(len(packed) - 4))
            parts.append(memoryview(packed)[4:])

    per_batch = max(1, _BATCH // block_bytes)
    for first in range(0, full, per_batch):
        n = min(per_batch, full - first)
        chunk = a[first * block_bytes:(first + n) * block_bytes].reshape(n, block_bytes)
        emit(bit_shuffle(chunk, block, itemsize))
    pos = full * block_bytes
    if last:
        emit(bit_shuffle(a[pos:pos + last * itemsize].reshape(1, -1), last, itemsize))
        pos += last * itemsize
    parts.append(a[pos:])
    return b"".join(parts)


def bitshuffle_lz4_decode(buf, itemsize: int, out=None, limit=None):
    """Decode a bitshuffle-LZ4 blob (either HSDS's 1.0.2 bitshuffle chunks or 0.9's)
    -> the raw bytes; into `out` (a writable C-contiguous ndarray of exactly the
    header's size) when given, then returning `out`.  Any block size in the header
    is read.  A header size above `limit` is refused before anything is allocated;
    each LZ4 block inflates into its own fixed-size block (never more).  Undecodable
    (damaged, truncated, too large) -> ServerError "damaged chunk: ..."."""
    mv = memoryview(buf).cast("B") if not isinstance(buf, (bytes, bytearray)) else buf
    try:
        total, block_bytes = _BSHUF_HEADER.unpack_from(mv, 0)
        if itemsize < 1 or total % itemsize or block_bytes % itemsize or block_bytes == 0:
            raise ValueError("inconsistent header")
        count = total // itemsize
        block = block_bytes // itemsize
        if block % 8:
            raise ValueError("block size is not a multiple of 8 elements")
        if total > _MAX_NBYTES:
            raise ValueError("implausible size")
        if limit is not None and total > limit:
            raise ValueError(f"inflates beyond {limit} bytes: its header says {total}")
        if out is not None and out.nbytes == total:
            dst = out.reshape(-1).view(np.uint8)
        else:
            out = None
            dst = np.empty(total, dtype=np.uint8)
        full, last, leftover = _block_sizes(count, block)
        per_batch = max(1, _BATCH // block_bytes)
        scratch = np.empty(max(min(full, per_batch) * block_bytes, last * itemsize),
                           dtype=np.uint8)
        pos = _BSHUF_HEADER.size

        def inflate(target, nbytes_out):
            nonlocal pos
            (clen,) = _BSHUF_BLOCK_LEN.unpack_from(mv, pos)
            pos += 4
            if pos + clen > len(mv):
                raise ValueError("truncated block")
            got = _lz4.decompress(_LZ4_PREFIX.pack(nbytes_out) + bytes(mv[pos:pos + clen]),
                                  target)
            if got is not None and len(got) != nbytes_out:
                raise ValueError("block decompressed to the wrong size")
            pos += clen

        for first in range(0, full, per_batch):
            n = min(per_batch, full - first)
            rows = scratch[:n * block_bytes].reshape(n, block_bytes)
            for i in range(n):
                inflate(rows[i], block_bytes)
            dst[first * block_bytes:(first + n) * block_bytes] = \
                bit_unshuffle(rows, block, itemsize).reshape(-1)
        done = full * block_bytes
        if last:
            rows = scratch[:last * itemsize]
            inflate(rows, last * itemsize)
            dst[done:done + last * itemsize] = bit_unshuffle(rows, last, itemsize)
            done += last * itemsize
        if pos + leftover * itemsize != len(mv):
            raise ValueError("unexpected length")
        dst[done:] = np.frombuffer(mv, dtype=np.uint8, count=leftover * itemsize, offset=pos)
    except Exception as e:
        raise ServerError(f"damaged chunk: cannot decode bitshuffle-LZ4 blob: {e}") from None
    return out if out is not None else dst.tobytes()
