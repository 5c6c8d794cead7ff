"""server.core.codecs: the stored-chunk filter pipeline (STORAGE.md §6.5), plus every
chunk of the HSDS 1.0.2 fixture decoded, assembled and checked against expected.json."""
import gzip
import json
import math
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numcodecs import blosc as nc_blosc
from numcodecs import lz4 as nc_lz4

from server.core import bitshuffle, codecs, values
from server.core.chunks import ChunkCodec
from server.core.codecs import (blosc_header, byte_shuffle, byte_unshuffle, pipeline_for)
from server.core.errors import BadRequest, ServerError

from conftest import FIXTURE

I4 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
F4 = {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"}
F8 = {"class": "H5T_FLOAT", "base": "H5T_IEEE_F64LE"}
VSTR = {"class": "H5T_STRING", "length": "H5T_VARIABLE", "charSet": "H5T_CSET_UTF8",
        "strPad": "H5T_STR_NULLTERM"}

SHUFFLE = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"}
FLETCHER = {"class": "H5Z_FILTER_FLETCHER32", "id": 3, "name": "fletcher32"}
BITSHUFFLE = {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}
COMPRESSORS = {
    "blosclz": {"class": "H5Z_FILTER_BLOSC", "id": 32001, "name": "blosclz"},
    "lz4": {"class": "H5Z_FILTER_LZ4", "id": 32004, "name": "lz4"},
    "lz4hc": {"class": "H5Z_FILTER_LZ4HC", "id": 32005, "name": "lz4hc"},
    "zlib": {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 5},
    "zstd": {"class": "H5Z_FILTER_ZSTD", "id": 32015, "name": "zstd"},
}
CODEC_BITS = {"blosclz": 0, "lz4": 1, "lz4hc": 1, "zlib": 3, "zstd": 4}

DTYPES = {"<i1": "H5T_STD_I8LE", "<u2": "H5T_STD_U16LE", "<i4": "H5T_STD_I32LE",
          ">i4": "H5T_STD_I32BE", "<i8": "H5T_STD_I64LE", "<f4": "H5T_IEEE_F32LE",
          "<f8": "H5T_IEEE_F64LE"}


def type_of(dt: str) -> dict:
    name = DTYPES[dt]
    return {"class": "H5T_FLOAT" if "IEEE" in name else "H5T_INTEGER", "base": name}


# ---- pipeline construction ----------------------------------------------------

def test_pipeline_selection_rules():
    p = pipeline_for([SHUFFLE, COMPRESSORS["zlib"]], I4)
    assert (p.compressor, p.cname, p.level, p.shuffle) == ("zlib", "zlib", 5, True)
    # the FIRST compression filter wins, order otherwise ignored; default level 5
    p = pipeline_for([COMPRESSORS["lz4"], COMPRESSORS["zstd"], SHUFFLE], I4)
    assert (p.compressor, p.level, p.shuffle) == ("lz4", 5, True)
    p = pipeline_for([{"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "deflate",
                       "level": 9}], I4)
    assert (p.cname, p.level) == ("zlib", 9)
    # shuffle is off for variable-length types
    assert pipeline_for([SHUFFLE, COMPRESSORS["lz4"]], VSTR).shuffle is False
    # scaleoffset counts as the compressor and hides a later one: stored raw
    p = pipeline_for([{"class": "H5Z_FILTER_SCALEOFFSET", "id": 6, "name": "scaleoffset"},
                      COMPRESSORS["zlib"]], I4)
    assert p.compressor == "scaleoffset" and p.cname is None and not p.compressed
    # HSDS 0.9: a USER filter naming a compressor is that compressor
    p = pipeline_for([{"class": "H5Z_FILTER_USER", "id": 32004, "name": "lz4", "level": 3}], I4)
    assert (p.cname, p.level) == ("lz4", 3)
    p = pipeline_for([{"class": "H5Z_FILTER_USER", "name": "shrink-o-rama"}], I4)
    assert p.cname is None
    # no-ops
    for filters in ([], None, [SHUFFLE], [FLETCHER], [{"class": "H5Z_FILTER_NBIT"}]):
        assert pipeline_for(filters, I4).identity
    # cached by a JSON key
    assert pipeline_for([SHUFFLE, COMPRESSORS["lz4"]], I4) is \
        pipeline_for([dict(SHUFFLE), dict(COMPRESSORS["lz4"])], dict(I4))
    with pytest.raises(BadRequest):
        pipeline_for("gzip", I4)


def test_unsupported_write_compressor():
    p = pipeline_for([{"class": "H5Z_FILTER_LZF", "id": 32000, "name": "lzf"}], I4)
    with pytest.raises(BadRequest):
        p.encode(b"\0" * 64)
    assert p.decode(b"\1" * 64) == b"\1" * 64     # not a frame -> raw


# ---- round trips ----------------------------------------------------------------

@pytest.mark.parametrize("cname", sorted(COMPRESSORS))
@pytest.mark.parametrize("shuffle", [False, True])
def test_round_trip_every_compressor(cname, shuffle):
    filters = ([SHUFFLE] if shuffle else []) + [COMPRESSORS[cname]]
    p = pipeline_for(filters, F8)
    raw = (np.arange(10000) % 50).astype("<f8").tobytes()
    enc = p.encode(raw)
    h = blosc_header(enc)
    assert h is not None and h["typesize"] == 1 and h["nbytes"] == len(raw)
    assert h["shuffle"] is shuffle and (h["flags"] >> 5) == CODEC_BITS[cname]
    assert len(enc) < len(raw)
    assert bytes(p.decode(enc)) == raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cname=st.sampled_from(sorted(COMPRESSORS)), shuffle=st.booleans(),
       dt=st.sampled_from(sorted(DTYPES)), count=st.integers(0, 70000),
       level=st.integers(0, 9), seed=st.integers(0, 2 ** 32 - 1),
       smooth=st.booleans())
def test_round_trip_random(cname, shuffle, dt, count, level, seed, smooth):
    rng = np.random.default_rng(seed)
    if smooth:
        arr = (np.arange(count) % 97).astype(dt)
    else:
        arr = rng.integers(0, 256, count * np.dtype(dt).itemsize, dtype=np.uint8).view(dt)
    raw = arr.tobytes()
    filt = dict(COMPRESSORS[cname], level=level)
    p = pipeline_for(([SHUFFLE] if shuffle else []) + [filt], type_of(dt))
    enc = p.encode(raw)
    assert blosc_header(enc)["nbytes"] == len(raw)
    assert bytes(p.decode(enc)) == raw
    # and through the chunk kernel, decoded straight into the chunk array
    codec = ChunkCodec(type_of(dt), (count,), ([SHUFFLE] if shuffle else []) + [filt])
    out = codec.decode(codec.encode(arr))
    assert out.flags.writeable and out.tobytes() == raw


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(max_size=30), min_size=1, max_size=50),
       cname=st.sampled_from(sorted(COMPRESSORS)))
def test_round_trip_variable_length(texts, cname):
    codec = ChunkCodec(VSTR, (len(texts),), [SHUFFLE, COMPRESSORS[cname]])
    arr = np.empty(len(texts), dtype=object)
    arr[:] = texts
    back = codec.decode(codec.encode(arr))
    assert back.tolist() == texts


def test_deflate_frame_header_bytes():
    """The frame written for DEFLATE: blosc1, codec bits 3 (zlib), typesize 1,
    byte-shuffle flag iff a shuffle filter is listed, clevel = level (§6.5)."""
    raw = (np.arange(25000, dtype="<i2") % 300).tobytes()
    for filters, flags in (([SHUFFLE, COMPRESSORS["zlib"]], 0x61),
                           ([COMPRESSORS["zlib"]], 0x60)):
        enc = pipeline_for(filters, {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"}) \
            .encode(raw)
        version, versionlz, fl, typesize, nbytes, blocksize, cbytes = \
            struct.unpack_from("<BBBBIII", enc)
        assert version == 2 and typesize == 1 and fl & 0xE7 == flags
        assert nbytes == 50000 and cbytes == len(enc) and 0 < blocksize <= nbytes
        # one zlib stream per block (typesize 1): block offset table, then u32 length
        # and a zlib stream starting 0x78
        if not fl & 0x02:
            (first,) = struct.unpack_from("<I", enc, 16)
            assert enc[first + 4] == 0x78


def test_fixture_frame_header_matches_spec():
    """/g1/int16_gzip chunk 0_0 header, byte for byte as STORAGE.md §6.5 lists it."""
    exp = json.loads((FIXTURE / "expected.json").read_text())["objects"]["/g1/int16_gzip"]
    data = (FIXTURE / "hsdstest" / exp["key"].replace(".dataset.json", "0_0")).read_bytes()
    assert data[:16].hex() == "02016101" + "50c30000" + "50c30000" + "80150000"
    h = blosc_header(data)
    assert h["codec"] == "zlib" and h["typesize"] == 1 and h["shuffle"]


# ---- raw streams and no-op filters ----------------------------------------------

def test_raw_zlib_and_gzip_streams_decode():
    raw = (np.arange(20000, dtype="<i4") % 1000).tobytes()
    p = pipeline_for([COMPRESSORS["zlib"]], I4)
    assert bytes(p.decode(zlib.compress(raw, 4))) == raw
    assert bytes(p.decode(gzip.compress(raw))) == raw
    # HDF5 shuffle + deflate: shuffled bytes inside the zlib stream
    ps = pipeline_for([SHUFFLE, COMPRESSORS["zlib"]], I4)
    assert bytes(ps.decode(zlib.compress(byte_shuffle(raw, 4)))) == raw
    # a damaged zlib stream is a server-side error, never garbage
    with pytest.raises(ServerError):
        p.decode(zlib.compress(raw)[:100])
    # neither a frame nor a zlib stream -> raw bytes
    odd = b"\x01\x02\x03" * 10
    assert p.decode(odd) == odd


def test_raw_zstd_frame_decodes():
    import zstandard
    raw = np.arange(5000, dtype="<i4").tobytes()
    p = pipeline_for([COMPRESSORS["zstd"]], I4)
    assert bytes(p.decode(zstandard.ZstdCompressor().compress(raw))) == raw


def test_damaged_blosc_frame():
    p = pipeline_for([COMPRESSORS["lz4"]], I4)
    enc = bytearray(p.encode((np.arange(50000, dtype="<i4") % 7).tobytes()))
    assert not blosc_header(bytes(enc))["memcpyed"]
    enc[16:20] = b"\xff" * 4           # first block offset beyond the frame
    with pytest.raises(ServerError):
        p.decode(bytes(enc))


@pytest.mark.parametrize("filters", [[SHUFFLE], [FLETCHER], [SHUFFLE, FLETCHER], [],
                                     [{"class": "H5Z_FILTER_NBIT", "id": 5, "name": "nbit"}]])
def test_no_compressor_is_identity(filters):
    raw = np.arange(1000, dtype="<i4").tobytes()
    p = pipeline_for(filters, I4)
    assert p.encode(raw) is raw
    assert p.decode(raw) is raw


def test_byte_shuffle_inverse():
    data = bytes(range(256)) * 3 + b"xyz"
    for size in (1, 2, 4, 8, 3):
        assert byte_unshuffle(byte_shuffle(data, size), size) == data
    assert byte_shuffle(b"\x01\x02\x03\x04\x05\x06\x07\x08", 4) == b"\x01\x05\x02\x06\x03\x07\x04\x08"


def test_blosc_header_rejects_non_frames():
    assert blosc_header(b"") is None
    assert blosc_header(zlib.compress(b"x" * 1000)) is None
    assert blosc_header(bytes(64)) is None                      # cbytes 0 != 64
    frame = pipeline_for([COMPRESSORS["lz4"]], I4).encode(bytes(4000))
    assert blosc_header(frame) is not None
    assert blosc_header(frame + b"\0") is None                  # length mismatch
    bad = bytearray(frame)
    bad[0] = 3                                                  # format version > 2
    assert blosc_header(bytes(bad)) is None


# ---- speed ------------------------------------------------------------------------

def test_no_filter_is_zero_copy_and_zlib_speed():
    raw = np.random.default_rng(1).standard_normal(262144).astype("<f4").tobytes()
    p = pipeline_for([], F4)
    t = time.perf_counter()
    for _ in range(100):
        assert p.encode(raw) is raw and p.decode(raw) is raw
    t_none = (time.perf_counter() - t) / 100
    pz = pipeline_for([SHUFFLE, dict(COMPRESSORS["zlib"], level=6)], F4)
    t = time.perf_counter()
    enc = pz.encode(raw)
    t_enc = time.perf_counter() - t
    t = time.perf_counter()
    dec = pz.decode(enc)
    t_dec = time.perf_counter() - t
    assert bytes(dec) == raw
    print(f"\n1 MiB f4: no filters {t_none * 1e6:.1f} us/round trip; zlib-6 encode "
          f"{t_enc * 1e3:.1f} ms, decode {t_dec * 1e3:.1f} ms, blosc threads "
          f"{codecs._blosc.get_nthreads()}")


# ---- HSDS 0.9 bitshuffle ------------------------------------------------------------

def _trans_bit_8x8(x):
    """bitshuffle's TRANS_BIT_8X8 on a uint64 array (little-endian machine)."""
    x = x.copy()
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    x = x ^ t ^ (t << np.uint64(28))
    return x


def _bitshuffle_block(data: bytes, size: int, elem_size: int) -> bytes:
    """A port of bitshuffle's bshuf_trans_bit_elem_scal (independent of the
    unpackbits-based decoder): byte transpose, 8x8 bit transposes, bit-row transpose."""
    a = np.frombuffer(data, np.uint8).reshape(size, elem_size).T.copy()      # [byte][elem]
    quads = a.reshape(-1).view("<u8")
    x = _trans_bit_8x8(quads)
    tmp = np.empty((8, quads.size), np.uint8)
    for kk in range(8):
        tmp[kk] = ((x >> np.uint64(8 * kk)) & np.uint64(0xFF)).astype(np.uint8)
    rows = tmp.reshape(8, elem_size, size // 8)                               # [bit][byte]
    return rows.transpose(1, 0, 2).tobytes()                                  # [byte][bit]


def bitshuffle_lz4_blob(raw: bytes, elem_size: int, block: int = 2048) -> bytes:
    size = len(raw) // elem_size
    out = [struct.pack(">QI", len(raw), block * elem_size)]
    sizes = [block] * (size // block)
    last = size % block - (size % block) % 8
    if last:
        sizes.append(last)
    pos = 0
    for n in sizes:
        shuffled = _bitshuffle_block(raw[pos:pos + n * elem_size], n, elem_size)
        comp = nc_lz4.compress(shuffled)[4:]            # raw LZ4 block
        out += [struct.pack(">I", len(comp)), comp]
        pos += n * elem_size
    out.append(raw[pos:])
    return b"".join(out)


@pytest.mark.parametrize("dt,count", [("<i4", 64), ("<i4", 5003), ("<f8", 4096),
                                      ("<u2", 2048 * 3 + 13), ("<i1", 100)])
def test_hsds09_bitshuffle_chunks_decode(dt, count):
    arr = (np.arange(count) * 7 % 1001 - 300).astype(dt)
    raw = arr.tobytes()
    blob = bitshuffle_lz4_blob(raw, arr.itemsize)
    assert len(blob) != len(raw)
    t = type_of(dt)
    # bitshuffle alone: the blob is stored as it is
    codec = ChunkCodec(t, (count,), [BITSHUFFLE])
    assert codec.decode(blob).tobytes() == raw
    # bitshuffle + lz4: the blob inside a blosc frame (blosc shuffle off)
    codec = ChunkCodec(t, (count,), [BITSHUFFLE, COMPRESSORS["lz4"]])
    frame = pipeline_for([COMPRESSORS["lz4"]], t).encode(blob)
    assert codec.decode(frame).tobytes() == raw
    # without the expected size the pipeline recognises the header
    assert bytes(pipeline_for([BITSHUFFLE, COMPRESSORS["lz4"]], t).decode(frame)) == raw
    # 1.0.2 writes plain frames of the unshuffled bytes (bitshuffle ignored)
    assert codec.decode(codec.encode(arr)).tobytes() == raw


def test_bitshuffle_undecodable_is_damaged_chunk():
    # stored bytes that do not decode are a data fault on the server's side: 500
    raw = np.arange(4096, dtype="<i4").tobytes()
    blob = bytearray(bitshuffle_lz4_blob(raw, 4))
    blob[20:40] = b"\xee" * 20
    codec = ChunkCodec(I4, (4096,), [BITSHUFFLE])
    with pytest.raises(ServerError, match="damaged chunk"):
        codec.decode(bytes(blob))


# ---- bitshuffle as HSDS 1.0.2 stores it (issue 12) ----------------------------------
#
# Facts from running stock HSDS 1.0.2 (POSIX storage, chunk files read back):
# * H5Z_FILTER_BITSHUFFLE (what h5pyd sends) is accepted, reported back as given, and
#   changes nothing in the stored bytes: alone -> the raw chunk; with deflate -> a
#   blosc1 zlib frame without the shuffle flag (flags 0x60), typesize 1.
# * an H5Z_FILTER_SHUFFLE filter NAMED "bitshuffle" is what makes 1.0.2 bit-shuffle:
#   the chunk becomes a bitshuffle-LZ4 blob (12-byte big-endian header: u64 raw bytes,
#   u32 2048 * itemsize), blosc-compressed (shuffle flag off) when a compressor is set.

SHUFFLE_NAMED_BITSHUFFLE = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "bitshuffle"}
I2 = {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"}
U1 = {"class": "H5T_INTEGER", "base": "H5T_STD_U8LE"}
CMPD_I2_F8 = {"class": "H5T_COMPOUND", "fields": [
    {"name": "a", "type": {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"}},
    {"name": "b", "type": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F64LE"}}]}
S3 = {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII", "strPad": "H5T_STR_NULLPAD",
      "length": 3}

# chunk files HSDS 1.0.2 wrote (one chunk of the whole dataset each)
HSDS_BS_GZIP4_I4 = bytes.fromhex(       # [BITSHUFFLE, DEFLATE level 4], i4 range(-5, 35)
    "02016001a0000000a000000063000000140000004b000000785e25c389124200140040249d88ee838e"
    "ffffc3cab3337666bf11f1f3ef109384d4cc99b9730b172e5db976e3d6d2cada9d8dad7b0f1e3d79f6"
    "e2d59b771f76f63e7df9f6e308210a1636")
HSDS_SB_I4 = bytes.fromhex(             # [SHUFFLE named bitshuffle], i4 range(-5, 35)
    "00000000000000a0000020000000002a1055010010990100101e0100f0001fe01fe01f1f00e0ff1f1f"
    "000000e005001f00050065501f00000000")
HSDS_SB_I2 = bytes.fromhex(             # same filter, i2 range(-6, 7): 8 + 5 leftover
    "000000000000001a000010000000000d43aa333c3f0100503f3f3f3f3f02000300040005000600")
HSDS_SB_U1 = bytes.fromhex(             # same filter, u1 range(100)
    "0000000000000064000008000000002917aa010017cc010017f001002700ff02002700ff0400400000"
    "ffff100006020007100050000000000060616263")
# larger ones by digest: (type, filters, values, stored length, sha256 of the chunk file)
F8_5003 = np.arange(5003) * 0.25 - 3
HSDS_SB_DIGESTS = [
    (I4, [SHUFFLE_NAMED_BITSHUFFLE], (np.arange(5003) * 7 - 1000).astype("<i4"), 1316,
     "88fc81228f8b8100a9a457be9d2a38e23150b0c988dd61da1f30287cafb2f489"),
    (F8, [SHUFFLE_NAMED_BITSHUFFLE], F8_5003.astype("<f8"), 965,
     "4e94204c0a132a6f4f4d7829048ef0900009108568bd8775c6b7ca672d2198d7"),
    (F8, [SHUFFLE_NAMED_BITSHUFFLE, COMPRESSORS["lz4"]], F8_5003.astype("<f8"), 879,
     "8bda32e6aeb49a1579aa641497e55994693f36a36fe732f0051ec3b4798f1bb4"),
    (CMPD_I2_F8, [SHUFFLE_NAMED_BITSHUFFLE],
     np.array([(i, i * 1.5) for i in range(20)], dtype=[("a", "<i2"), ("b", "<f8")]), 94,
     "a9f9d20572cf1bc5059447594dd1261eb4f225872695c336032a5d7878bf3c91"),
]


def test_bitshuffle_filter_writes_what_hsds_102_writes():
    raw = np.arange(-5, 35, dtype="<i4").tobytes()
    for filters in ([BITSHUFFLE], [{"class": "H5Z_FILTER_USER", "id": 32008,
                                    "name": "bitshuffle"}], [BITSHUFFLE, FLETCHER]):
        p = pipeline_for(filters, I4)
        assert p.bitshuffle and not p.bitshuffle_lz4 and not p.compressed
        assert p.encode(raw) is raw                    # stored raw, as HSDS stores it
        assert p.decode(raw) == raw
        assert ChunkCodec(I4, (40,), filters).decode(raw).tobytes() == raw
    # with deflate: a blosc zlib frame, shuffle flag off, typesize 1 -- HSDS's frame
    # decodes to the raw chunk, and ours has HSDS's header (the deflate stream itself
    # comes from zlib-ng here, zlib there: both are valid)
    filters = [BITSHUFFLE, {"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 4, "name": "gzip"}]
    codec = ChunkCodec(I4, (40,), filters)
    assert codec.decode(HSDS_BS_GZIP4_I4).tobytes() == raw
    ours = codec.encode(np.frombuffer(raw, "<i4"))
    assert ours[:12] == HSDS_BS_GZIP4_I4[:12] == bytes.fromhex("02016001a0000000a0000000")
    assert codec.decode(ours).tobytes() == raw
    # shuffle + bitshuffle + deflate: the byte-shuffle flag, no bit shuffling
    p = pipeline_for([SHUFFLE, BITSHUFFLE, COMPRESSORS["zlib"]], I4)
    assert p.shuffle and not p.bitshuffle_lz4 and blosc_header(p.encode(raw))["flags"] == 0x61


@pytest.mark.parametrize("type_json, values, stored", [
    (I4, np.arange(-5, 35, dtype="<i4"), HSDS_SB_I4),
    (I2, np.arange(-6, 7, dtype="<i2"), HSDS_SB_I2),
    (U1, np.arange(100, dtype="u1"), HSDS_SB_U1),
])
def test_shuffle_named_bitshuffle_exact_hsds_bytes(type_json, values, stored):
    codec = ChunkCodec(type_json, (values.size,), [SHUFFLE_NAMED_BITSHUFFLE])
    assert codec.pipeline.bitshuffle_lz4 and codec.compressed
    assert not codec.pipeline.shuffle
    assert codec.encode(values) == stored
    got = codec.decode(stored)
    assert got.flags.writeable and got.tobytes() == values.tobytes()
    assert codec.decode(stored, writable=False).tobytes() == values.tobytes()


@pytest.mark.parametrize("type_json, filters, values, size, digest", HSDS_SB_DIGESTS)
def test_shuffle_named_bitshuffle_exact_hsds_digests(type_json, filters, values, size,
                                                     digest):
    import hashlib
    codec = ChunkCodec(type_json, (values.size,), filters)
    stored = codec.encode(values)
    assert len(stored) == size and hashlib.sha256(stored).hexdigest() == digest
    assert codec.decode(stored).tobytes() == values.tobytes()


def test_bitshuffle_pipeline_selection():
    p = pipeline_for([SHUFFLE_NAMED_BITSHUFFLE, COMPRESSORS["zstd"]], I4)
    assert (p.bitshuffle_lz4, p.shuffle, p.cname) == (True, False, "zstd")
    assert p.compressed and not p.identity
    # the first shuffle-class filter decides, as in HSDS
    p = pipeline_for([SHUFFLE_NAMED_BITSHUFFLE, SHUFFLE], I4)
    assert p.bitshuffle_lz4 and not p.shuffle
    p = pipeline_for([SHUFFLE, SHUFFLE_NAMED_BITSHUFFLE], I4)
    assert p.shuffle and not p.bitshuffle_lz4
    # variable-length types: nothing (HSDS stores such chunks raw)
    p = pipeline_for([SHUFFLE_NAMED_BITSHUFFLE], VSTR)
    assert not p.bitshuffle_lz4 and p.identity
    p = pipeline_for([BITSHUFFLE], VSTR)
    assert not p.bitshuffle and p.identity
    # scaleoffset hides compression, not bit shuffling (HSDS: blob stored unframed)
    p = pipeline_for([{"class": "H5Z_FILTER_SCALEOFFSET", "id": 6, "name": "scaleoffset"},
                      SHUFFLE_NAMED_BITSHUFFLE, COMPRESSORS["lz4"]], I4)
    assert p.cname is None and p.bitshuffle_lz4
    raw = np.arange(100, dtype="<i4").tobytes()
    assert p.encode(raw) == bitshuffle_lz4_blob(raw, 4)


BS_CASES = [("<i4", 0), ("<i4", 1), ("<i4", 7), ("<i4", 8), ("<i4", 40), ("<u2", 2048),
            ("<u2", 2048 * 3 + 13), ("<f8", 4096 + 8), ("<i1", 100), ("<i8", 5003),
            (">i4", 2050), ("<f4", 2048 * 300 + 5)]


@pytest.mark.parametrize("dt, count", BS_CASES)
@pytest.mark.parametrize("cname", [None, "lz4", "zlib", "zstd", "blosclz"])
def test_shuffle_named_bitshuffle_round_trip(dt, count, cname):
    rng = np.random.default_rng(count)
    arr = (rng.integers(-300, 300, count) * 3).astype(dt)
    raw = arr.tobytes()
    filters = [SHUFFLE_NAMED_BITSHUFFLE] + ([COMPRESSORS[cname]] if cname else [])
    t = type_of(dt)
    p = pipeline_for(filters, t)
    stored = bytes(p.encode(raw))
    blob = bitshuffle_lz4_blob(raw, arr.itemsize)     # the independent reference encoder
    if cname is None:
        assert stored == blob
    else:
        h = blosc_header(stored)
        assert h["codec"] == cname and not h["shuffle"] and h["typesize"] == 1
        assert nc_blosc.decompress(stored) == blob
    assert bytes(p.decode(stored, nbytes=len(raw))) == raw
    assert bytes(p.decode(stored)) == raw or count == 0
    codec = ChunkCodec(t, (count,), filters)
    got = codec.decode(stored)
    assert got.flags.writeable and got.tobytes() == raw


@pytest.mark.parametrize("type_json, itemsize", [(S3, 3), (CMPD_I2_F8, 10),
                                                  ({"class": "H5T_ARRAY", "base": F8,
                                                    "dims": [2]}, 16)])
def test_shuffle_named_bitshuffle_odd_itemsizes(type_json, itemsize):
    count = 2048 + 21
    raw = np.random.default_rng(itemsize).integers(0, 7, count * itemsize,
                                                   dtype=np.uint8).tobytes()
    p = pipeline_for([SHUFFLE_NAMED_BITSHUFFLE, COMPRESSORS["lz4"]], type_json)
    stored = p.encode(raw)
    assert nc_blosc.decompress(stored) == bitshuffle_lz4_blob(raw, itemsize)
    assert bytes(p.decode(stored, nbytes=len(raw))) == raw


def test_bit_shuffle_matches_reference_and_inverts():
    for itemsize, count in ((1, 8), (4, 2048), (3, 64), (8, 16), (10, 2048)):
        raw = np.random.default_rng(count).integers(0, 256, count * itemsize,
                                                    dtype=np.uint8)
        planes = bitshuffle.bit_shuffle(raw, count, itemsize)
        assert planes.tobytes() == _bitshuffle_block(raw.tobytes(), count, itemsize)
        assert bitshuffle.bit_unshuffle(planes, count, itemsize).tobytes() == raw.tobytes()
        # several blocks at once
        two = np.stack([raw, raw[::-1]])
        both = bitshuffle.bit_shuffle(two, count, itemsize)
        assert both[1].tobytes() == _bitshuffle_block(raw[::-1].tobytes(), count, itemsize)
        assert np.array_equal(bitshuffle.bit_unshuffle(both, count, itemsize), two)


def test_bitshuffle_blob_header_block_size_is_read():
    """Blobs with another block size (any writer's) decode by their header."""
    raw = np.arange(5000, dtype="<i4").tobytes()
    blob = bitshuffle_lz4_blob(raw, 4, block=512)
    p = pipeline_for([SHUFFLE_NAMED_BITSHUFFLE], I4)
    assert bytes(p.decode(blob, nbytes=len(raw))) == raw


def test_shuffle_named_bitshuffle_damaged_or_raw():
    raw = np.arange(4096, dtype="<i4").tobytes()
    codec = ChunkCodec(I4, (4096,), [SHUFFLE_NAMED_BITSHUFFLE])
    blob = bytearray(codec.encode(np.frombuffer(raw, "<i4")))
    blob[20:40] = b"\xee" * 20
    with pytest.raises(ServerError, match="damaged chunk"):
        codec.decode(bytes(blob))
    # not a blob (no header of this chunk's size): taken as the raw bytes
    assert codec.decode(raw).tobytes() == raw


# ---- the fixture: every stored chunk ---------------------------------------------------

EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
BUCKET = FIXTURE / "hsdstest"
REF_CLASSES = ("H5D_CONTIGUOUS_REF", "H5D_CHUNKED_REF", "H5D_CHUNKED_REF_INDIRECT")


def dataset_doc(entry) -> dict:
    return json.loads((BUCKET / entry["key"]).read_text())


def chunk_dims_for(doc) -> tuple:
    shape = doc["shape"]
    if shape["class"] == "H5S_SCALAR":
        return (1,)
    cp_layout = doc.get("creationProperties", {}).get("layout") or {}
    layout = doc.get("layout") if doc.get("layout") and \
        cp_layout.get("class") not in REF_CLASSES else cp_layout
    if layout.get("class", "").startswith("H5D_CHUNKED"):
        return tuple(layout["dims"])
    return tuple(shape["dims"])


def codec_of(doc) -> ChunkCodec:
    cp = doc.get("creationProperties", {})
    fill = cp.get("fillValue")
    b64 = fill if cp.get("fillValue_encoding") == "base64" else None
    return ChunkCodec(doc["type"], chunk_dims_for(doc), cp.get("filters"),
                      fill_value_json=None if b64 else fill, fill_value_b64=b64,
                      layout_class=(cp.get("layout") or {}).get("class"))


def assemble(entry, check_reencode=True) -> np.ndarray:
    """Decode every stored chunk of a fixture dataset and build the whole array."""
    doc = dataset_doc(entry)
    codec = codec_of(doc)
    cdims = codec.chunk_dims
    scalar = doc["shape"]["class"] == "H5S_SCALAR"
    dims = (1,) if scalar else tuple(doc["shape"]["dims"])
    grid = tuple(math.ceil(d / c) for d, c in zip(dims, cdims))
    full = np.empty(tuple(g * c for g, c in zip(grid, cdims)) + codec.shape[len(cdims):],
                    dtype=codec.dtype)
    fill = codec.fill_chunk()
    for idx in np.ndindex(*grid):
        full[tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, cdims))] = fill
    folder = BUCKET / entry["key"].replace(".dataset.json", "")
    for key in entry["chunk_keys"]:
        idx = tuple(int(i) for i in key.split("/")[-1].split("_"))
        data = (folder / key).read_bytes()
        arr = codec.decode(data)
        assert arr.shape == codec.shape and arr.flags.writeable
        full[tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, cdims))] = arr
        if check_reencode:
            again = codec.decode(codec.encode(arr))
            assert codec.to_raw(again) == codec.to_raw(arr)
            assert not codec.is_fill(arr)       # HSDS never stores an all-fill chunk
    out = full[tuple(slice(0, d) for d in dims)]
    return out.reshape(()) if scalar else out


def approx_equal(got, want) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and \
            all(approx_equal(g, w) for g, w in zip(got, want))
    if isinstance(want, float) or isinstance(got, float):
        if want == "nan":
            return got != got
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-6,
                                                              abs_tol=1e-9)
    return got == want


def _fixture_datasets():
    out = []
    for path, entry in EXPECTED["objects"].items():
        if entry.get("kind") != "dataset":
            continue
        if (entry.get("layout") or {}).get("class") in REF_CLASSES:
            continue
        out.append(path)
    return out


@pytest.mark.parametrize("path", _fixture_datasets())
def test_fixture_dataset_reads_back(path):
    entry = EXPECTED["objects"][path]
    arr = assemble(entry)
    doc = dataset_doc(entry)
    t = doc["type"]
    summary = entry.get("summary") or {}
    if "count" in summary:
        shape = doc["shape"]
        assert math.prod(shape.get("dims", [])) == summary["count"] == arr.size
    for sample in entry.get("samples", []):
        got = values.to_json(arr[tuple(sample["index"])], t)
        assert approx_equal(got, sample["value"]), (path, sample, got)
    if "values" in summary:
        got = values.to_json(arr, t)
        assert approx_equal(got, summary["values"]), (path, got)
    if "sum" in summary:
        if arr.dtype.kind in "iub":
            assert int(arr.astype("i8").sum()) == summary["sum"]
        else:
            assert math.isclose(float(arr.astype("f8").sum()), summary["sum"], rel_tol=1e-9)
    for name, want in (summary.get("field_sums") or {}).items():
        col = arr[name]
        if col.dtype.kind in "iub":
            assert int(col.astype("i8").sum()) == want
        elif col.dtype.kind == "f":
            assert math.isclose(float(col.astype("f8").sum()), want, rel_tol=1e-9)
        else:
            import hashlib
            assert hashlib.md5(b"".join(col.reshape(-1).tolist())).hexdigest() == want


def test_fixture_covers_the_interesting_datasets():
    paths = set(_fixture_datasets())
    for p in ("/g1/shuffle_only_i4", "/g1/bitshuffle_lz4_i4", "/g1/int16_gzip",
              "/g1/zstd_i4", "/g1/blosclz_u2", "/g1/lz4_shuffle_f8", "/g1/partitioned_i4",
              "/g2/vlen_cmpd", "/g2/vlen_i4", "/g2/vlen_str", "/g2/table", "/scalar",
              "/g2/bigendian_i4", "/g2/fill_only", "/g1/float2d"):
        assert p in paths
    assert EXPECTED["objects"]["/g1/shuffle_only_i4"].get("hsds_readback_broken") is True


@pytest.mark.parametrize("size", [1, 4, 1000, 262144, 262145, 1048576, 3000001])
@pytest.mark.parametrize("shuffle", [False, True])
def test_zlib_ng_frames_are_blosc_frames(size, shuffle):
    """Our DEFLATE frames (zlib-ng inside) decode with c-blosc, as HSDS reads them."""
    from numcodecs import Blosc

    from server.core.codecs import blosc_header, zlib_frame
    rng = np.random.default_rng(size)
    raw = (np.floor(rng.random(size // 4 + 1, dtype=np.float32) * 64)).tobytes()[:size]
    frame = zlib_frame(raw, 6, shuffle)
    assert Blosc().decode(frame) == raw
    header = blosc_header(frame)
    assert header["codec"] == "zlib" and header["typesize"] == 1
    assert header["shuffle"] == shuffle and header["nbytes"] == size
    noise = rng.integers(0, 256, size, dtype=np.uint8).tobytes()   # blocks that do not shrink
    assert Blosc().decode(zlib_frame(noise, 6, shuffle)) == noise


@pytest.mark.parametrize("size", [1, 1000, 262145, 1048576])
def test_zlib_frames_of_typesize_1_inflate_with_zlib_ng(size):
    """Frames of typesize 1 (ours, and blosc's own of bytes) skip blosc: zlib-ng
    inflates each block, the blocks that did not shrink are copied, any output buffer."""
    from numcodecs import Blosc

    from server.core.codecs import _zlib_frame_decode, blosc_header, zlib_frame
    rng = np.random.default_rng(size)
    smooth = (np.floor(rng.random(size // 4 + 1, dtype=np.float32) * 64)).tobytes()[:size]
    noise = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    mixed = (smooth[:size // 2] + noise)[:size]           # some blocks shrink, some do not
    theirs = Blosc(cname="zlib", clevel=5, shuffle=Blosc.NOSHUFFLE).encode(smooth)
    p = pipeline_for([COMPRESSORS["zlib"]], {"class": "H5T_INTEGER", "base": "H5T_STD_U8LE"})
    for raw, frame in ((smooth, zlib_frame(smooth, 6, False)), (mixed, zlib_frame(mixed, 6, True)),
                       (smooth, theirs)):
        header = blosc_header(frame)
        if header["memcpyed"]:
            continue
        assert bytes(_zlib_frame_decode(frame, header, None)) == raw
        assert bytes(p.decode(frame, nbytes=size)) == raw
        out = np.empty(size, np.uint8)
        assert p.decode(frame, nbytes=size, out=out) is out and out.tobytes() == raw


def test_damaged_zlib_frame_is_a_damaged_chunk():
    from server.core.codecs import zlib_frame
    raw = (np.arange(300000, dtype="<i4") % 97).tobytes()
    p = pipeline_for([COMPRESSORS["zlib"]], I4)
    frame = bytearray(zlib_frame(raw, 6, False))
    frame[40:60] = b"\x00" * 20                     # inside the first block's stream
    with pytest.raises(ServerError, match="damaged chunk"):
        p.decode(bytes(frame), nbytes=len(raw))
    short = bytearray(zlib_frame(raw, 6, False))
    short[20:24] = (len(short) - 2).to_bytes(4, "little")    # a block starting at the end
    with pytest.raises(ServerError, match="damaged chunk"):
        p.decode(bytes(short), nbytes=len(raw))
