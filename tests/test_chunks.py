"""server.core.chunks: fill chunks, is_fill, decode/encode of fixed and variable-length
chunks, the codec cache, and the reference-layout helpers against the fixture's /refs
datasets (byte ranges of hsdstest/ref/sample.h5 read with plain file reads)."""
import json
import math
import zlib

import numpy as np
import pytest

from server.core import values
from server.core.chunks import (ChunkCodec, chunked_ref_range, codec_for,
                                contiguous_ref_range, hyper_pieces, indirect_entry,
                                split_uri)
from server.core.errors import BadRequest, ServerError

from conftest import FIXTURE

I2 = {"class": "H5T_INTEGER", "base": "H5T_STD_I16LE"}
I4 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
F4 = {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"}
F8 = {"class": "H5T_FLOAT", "base": "H5T_IEEE_F64LE"}
VSTR = {"class": "H5T_STRING", "length": "H5T_VARIABLE", "charSet": "H5T_CSET_UTF8",
        "strPad": "H5T_STR_NULLTERM"}
ASTR = {"class": "H5T_STRING", "length": "H5T_VARIABLE", "charSet": "H5T_CSET_ASCII",
        "strPad": "H5T_STR_NULLTERM"}
VLEN_I4 = {"class": "H5T_VLEN", "base": I4, "size": "H5T_VARIABLE"}
S6 = {"class": "H5T_STRING", "length": 6, "charSet": "H5T_CSET_ASCII",
      "strPad": "H5T_STR_NULLPAD"}
CMPD = {"class": "H5T_COMPOUND", "fields": [{"name": "name", "type": S6},
                                            {"name": "value", "type": "H5T_STD_I32LE"}]}
VCMPD = {"class": "H5T_COMPOUND", "fields": [{"name": "n", "type": "H5T_STD_I16LE"},
                                             {"name": "s", "type": VSTR}]}
ARR3 = {"class": "H5T_ARRAY", "dims": [3], "base": I2}
ARR_VSTR = {"class": "H5T_ARRAY", "dims": [2], "base": VSTR}
DEFLATE = {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 5}
SHUFFLE = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"}
LZ4 = {"class": "H5Z_FILTER_LZ4", "id": 32004, "name": "lz4"}

EXPECTED = json.loads((FIXTURE / "expected.json").read_text())["objects"]
BUCKET = FIXTURE / "hsdstest"


# ---- fill chunks ----------------------------------------------------------------

def test_fill_scalar_value():
    codec = ChunkCodec(F4, (50, 100), fill_value_json=-1.0)
    chunk = codec.fill_chunk()
    assert chunk.shape == (50, 100) and chunk.dtype == np.dtype("<f4")
    assert chunk.flags.writeable and (chunk == -1.0).all()
    chunk[0, 0] = 5
    assert codec.fill_chunk()[0, 0] == -1.0          # copies, never the template
    assert codec.decode(None)[0, 0] == -1.0


def test_fill_default_zero_and_big_endian():
    codec = ChunkCodec({"class": "H5T_INTEGER", "base": "H5T_STD_I32BE"}, (4,))
    assert codec.fill_chunk().dtype == np.dtype(">i4") and not codec.fill_chunk().any()
    assert codec.fill_bytes() == bytes(16)


def test_fill_compound_list():
    codec = ChunkCodec(CMPD, (3,), fill_value_json=["blank", -999])
    chunk = codec.fill_chunk()
    assert chunk["name"].tolist() == [b"blank"] * 3
    assert chunk["value"].tolist() == [-999] * 3
    assert codec.is_fill(chunk)
    chunk[1]["value"] = 0
    assert not codec.is_fill(chunk)


def test_fill_base64_nan():
    codec = ChunkCodec(F4, (8,), fill_value_b64="AADAfw==")      # f32 NaN
    chunk = codec.fill_chunk()
    assert np.isnan(chunk).all()
    assert codec.is_fill(chunk)                  # a NaN fill equals NaN
    chunk[3] = 1.5
    assert not codec.is_fill(chunk)
    with pytest.raises(BadRequest):
        ChunkCodec(F4, (8,), fill_value_b64="not base64!")


def test_fill_json_nan():
    for fill in (float("nan"), "nan"):
        codec = ChunkCodec(F8, (2, 3), fill_value_json=fill)
        chunk = codec.fill_chunk()
        assert np.isnan(chunk).all() and codec.is_fill(chunk)
        assert codec.is_fill(codec.decode(codec.encode(chunk)))


def test_fill_array_type():
    codec = ChunkCodec(ARR3, (4,), fill_value_json=[1, 2, 3])
    chunk = codec.fill_chunk()
    assert chunk.shape == (4, 3) and chunk.dtype == np.dtype("<i2")
    assert chunk.tolist() == [[1, 2, 3]] * 4
    assert codec.decode(codec.encode(chunk)).tolist() == chunk.tolist()


def test_fill_vlen_unwritten():
    for t in (VSTR, ASTR, VLEN_I4):
        codec = ChunkCodec(t, (5,))
        chunk = codec.fill_chunk()
        assert chunk.dtype.kind == "O" and chunk.tolist() == [0] * 5
        assert codec.is_fill(chunk)
        assert codec.fill_bytes() == b"\0\0\0\0" * 5
        assert values.to_json(chunk, t) == [0] * 5          # unwritten -> 0 (§11.8)
    codec = ChunkCodec(VCMPD, (2,))
    assert codec.fill_chunk()["s"].tolist() == [0, 0]
    assert codec.fill_bytes() == (b"\0\0" + b"\0\0\0\0") * 2


def test_fill_vlen_string_value():
    codec = ChunkCodec(VSTR, (3,), fill_value_json="none")
    assert codec.fill_chunk().tolist() == ["none"] * 3
    assert codec.decode(None).tolist() == ["none"] * 3


def test_large_fixed_string_fill():
    t = {"class": "H5T_STRING", "length": 1000, "charSet": "H5T_CSET_ASCII",
         "strPad": "H5T_STR_NULLPAD"}
    codec = ChunkCodec(t, (10,), fill_value_json="x" * 1000)
    assert codec.fill_chunk()[9] == b"x" * 1000


# ---- is_fill -------------------------------------------------------------------

def test_is_fill_zero_and_signed_zero():
    codec = ChunkCodec(F4, (1000,))
    chunk = codec.fill_chunk()
    assert codec.is_fill(chunk)
    chunk[999] = 1e-30
    assert not codec.is_fill(chunk)
    chunk[999] = -0.0            # byte-wise: stored (never loses what was written)
    assert not codec.is_fill(chunk)


def test_is_fill_vlen():
    codec = ChunkCodec(VSTR, (3,))
    chunk = codec.fill_chunk()
    chunk[1] = ""                # same stored bytes as never written
    assert codec.is_fill(chunk)
    chunk[1] = "a"
    assert not codec.is_fill(chunk)


def test_is_fill_shape_and_dtype():
    codec = ChunkCodec(I4, (4,), fill_value_json=7)
    assert codec.is_fill(np.full(4, 7, dtype="<i8"))          # converted
    with pytest.raises(BadRequest):
        codec.is_fill(np.full(5, 7, dtype="<i4"))


def test_is_fill_vectorised_speed():
    import time
    codec = ChunkCodec(F4, (512, 512), fill_value_json=float("nan"))
    chunk = codec.fill_chunk()
    t = time.perf_counter()
    for _ in range(20):
        assert codec.is_fill(chunk)
    print(f"\nis_fill 1 MiB NaN-filled chunk: {(time.perf_counter() - t) / 20 * 1e6:.0f} us")


# ---- decode / encode -------------------------------------------------------------

def test_decode_fixed_writable_and_zero_copy_options():
    codec = ChunkCodec(F4, (512, 512))
    arr = np.random.default_rng(0).standard_normal((512, 512)).astype("<f4")
    raw = arr.tobytes()
    assert codec.to_raw(arr) == raw and codec.encode(arr) == raw
    out = codec.decode(raw)
    assert out.flags.writeable and np.array_equal(out, arr)
    view = codec.decode(raw, writable=False)                 # zero-copy view
    assert not view.flags.writeable and np.shares_memory(view, np.frombuffer(raw, "u1"))
    buf = bytearray(raw)                                     # writable buffer: no copy
    assert np.shares_memory(codec.decode(buf), np.frombuffer(buf, "u1"))


def test_decode_short_long_and_pad():
    codec = ChunkCodec(I4, (10,))
    raw = np.arange(10, dtype="<i4").tobytes()
    with pytest.raises(ServerError):
        codec.decode(raw[:-4])
    padded = codec.decode(raw[:-8], pad=True)
    assert padded.tolist() == list(range(8)) + [0, 0] and padded.flags.writeable
    assert codec.decode(raw + b"junk").tolist() == list(range(10))     # truncated
    # contiguous-ref codecs pad by default
    ref = ChunkCodec(I4, (10,), layout_class="H5D_CONTIGUOUS_REF")
    assert ref.decode(raw[:8]).tolist() == [0, 1] + [0] * 8


def test_decode_compressed_into_fresh_array():
    codec = ChunkCodec(I2, (250, 100), [SHUFFLE, DEFLATE])
    arr = (np.arange(25000).reshape(250, 100) % 3000 - 1500).astype("<i2")
    enc = codec.encode(arr)
    assert codec.compressed and enc[:4] == b"\x02\x01\x61\x01"
    a, b = codec.decode(enc), codec.decode(enc)
    assert np.array_equal(a, arr) and not np.shares_memory(a, b) and a.flags.writeable


@pytest.mark.parametrize("t,items", [
    (VSTR, ["", "ascii", "ünïcödé", "日本語", "emoji 🙂", 0]),
    (ASTR, [b"a", b"", 0, b"xyz"]),
    (VLEN_I4, [np.array([1, 2, 3], "<i4"), np.array([], "<i4"), 0, np.array([-5], "<i4")]),
])
@pytest.mark.parametrize("filters", [[], [SHUFFLE, DEFLATE], [LZ4]])
def test_vlen_round_trips(t, items, filters):
    codec = ChunkCodec(t, (len(items),), filters)
    arr = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        arr[i] = v
    back = codec.decode(codec.encode(arr))
    assert back.shape == (len(items),) and back.flags.writeable
    assert codec.to_raw(back) == codec.to_raw(arr)
    assert not codec.is_fill(arr)


def test_vlen_compound_and_array_round_trips():
    codec = ChunkCodec(VCMPD, (3,), [DEFLATE])
    arr = values.from_json([[1, "ab"], [-2, "été"], [300, ""]], VCMPD, (3,))
    back = codec.decode(codec.encode(arr))
    assert values.to_json(back, VCMPD) == [[1, "ab"], [-2, "été"], [300, ""]]
    # the fixture bytes of §6.4
    assert codec.to_raw(arr).hex().startswith("0100" "02000000" "6162" "feff" "05000000")
    codec = ChunkCodec(ARR_VSTR, (2,))
    arr = values.from_json([["a", "bc"], ["", "d"]], ARR_VSTR, (2,))
    back = codec.decode(codec.encode(arr))
    assert back.shape == (2, 2) and values.to_json(back, ARR_VSTR) == [["a", "bc"], ["", "d"]]


def test_vlen_damaged_chunk():
    codec = ChunkCodec(VSTR, (3,))
    with pytest.raises(ServerError):
        codec.decode(b"\x05\x00\x00\x00ab")


def test_decode_piece_other_shape():
    codec = ChunkCodec(I4, (24, 10))
    piece = np.arange(80, dtype="<i4").reshape(8, 10)
    assert np.array_equal(codec.decode_piece(piece.tobytes(), (8, 10)), piece)


# ---- codec cache ---------------------------------------------------------------------

def test_codec_for_caches_by_id_and_content():
    doc = {"id": "d-1", "type": F4, "shape": {"class": "H5S_SIMPLE", "dims": [100]},
           "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [10]},
                                  "fillValue": -1.0, "filters": [DEFLATE]}}
    a = codec_for(doc, (10,))
    assert codec_for(json.loads(json.dumps(doc)), [10]) is a
    assert a.fill_chunk()[0] == -1.0 and a.pipeline.cname == "zlib"
    other = json.loads(json.dumps(doc))
    other["creationProperties"]["fillValue"] = 3.0
    b = codec_for(other, (10,))
    assert b is not a and b.fill_chunk()[0] == 3.0
    assert codec_for(doc, (20,)) is not a
    b64 = json.loads(json.dumps(doc))
    b64["creationProperties"].update(fillValue="AADAfw==", fillValue_encoding="base64")
    assert np.isnan(codec_for(b64, (10,)).fill_chunk()).all()
    b64["creationProperties"]["fillValue_encoding"] = "hex"
    with pytest.raises(BadRequest):
        codec_for(b64, (10,))
    ref = json.loads(json.dumps(doc))
    ref["creationProperties"]["layout"] = {"class": "H5D_CONTIGUOUS_REF",
                                           "file_uri": "b/k", "offset": 0, "size": 400}
    assert codec_for(ref, (100,)).pad_short


# ---- reference layouts: pure helpers ----------------------------------------------------

def test_split_uri():
    assert split_uri("hsdstest/ref/sample.h5") == ("hsdstest", "ref/sample.h5")
    assert split_uri("/hsdstest/ref/sample.h5") == ("hsdstest", "ref/sample.h5")
    assert split_uri("s3://my-bucket/a/b/c.h5") == ("my-bucket", "a/b/c.h5")
    assert split_uri("https://acct.blob.core.windows.net/container/dir/f.h5") == \
        ("container", "dir/f.h5")
    for bad in ("", "nokey", "s3://bucket", "s3://bucket/", None):
        with pytest.raises(BadRequest):
            split_uri(bad)


def test_contiguous_ref_range_arithmetic():
    layout = {"class": "H5D_CONTIGUOUS_REF", "file_uri": "b/k", "offset": 1000,
              "size": 100 * 10 * 4}
    # virtual chunks of 30 rows of a [100, 10] int32 dataset
    assert contiguous_ref_range(layout, (0, 0), (30, 10), (100, 10), 4) == (1000, 1200)
    assert contiguous_ref_range(layout, (2, 0), (30, 10), (100, 10), 4) == (3400, 1200)
    # the last one is clipped to the layout's size (then zero padded on decode)
    assert contiguous_ref_range(layout, (3, 0), (30, 10), (100, 10), 4) == (4600, 400)
    # 3-D: 1 x 5 x full
    layout3 = {"offset": 0, "size": 4 * 20 * 8 * 2}
    assert contiguous_ref_range(layout3, (1, 2, 0), (1, 5, 8), (4, 20, 8), 2) == \
        (1 * 20 * 8 * 2 + 2 * 5 * 8 * 2, 80)
    with pytest.raises(BadRequest):
        contiguous_ref_range(layout, (0, 0), (30, 5), (100, 10), 4)   # not contiguous


def test_chunked_ref_range_and_indirect_entry():
    layout = {"chunks": {"0_0": [3008, 320], "2_0": [3648, 320], "3_0": [0, 0]}}
    assert chunked_ref_range(layout, (0, 0)) == (3008, 320)
    assert chunked_ref_range(layout, (1, 0)) is None
    assert chunked_ref_range(layout, (3, 0)) is None
    with pytest.raises(BadRequest):
        chunked_ref_range({"class": "H5D_CHUNKED_REF"}, (0, 0))
    dt = np.dtype([("offset", "<i8"), ("size", "<i4"), ("file_uri", "S32")])
    row = np.array([(10, 20, b"bucket/other.h5")], dtype=dt)[0]
    assert indirect_entry(row) == ("bucket/other.h5", 10, 20)
    row2 = np.array([(10, 0, b"")], dtype=dt)[0]
    assert indirect_entry(row2) == (None, 10, 0)
    assert indirect_entry([5, 6]) == (None, 5, 6)


def test_hyper_pieces():
    pieces = hyper_pieces((0, 0), (24, 10), (8, 10))
    assert pieces == [((0, 0), (slice(0, 8), slice(0, 10))),
                      ((1, 0), (slice(8, 16), slice(0, 10))),
                      ((2, 0), (slice(16, 24), slice(0, 10)))]
    pieces = hyper_pieces((1, 1), (4, 6), (2, 3))
    assert [p[0] for p in pieces] == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert pieces[3][1] == (slice(2, 4), slice(3, 6))
    # pieces beyond the chunk table are left out
    assert [p[0] for p in hyper_pieces((1, 1), (4, 6), (2, 3), table_shape=(3, 4))] == \
        [(2, 2), (2, 3)]
    assert hyper_pieces((2,), (8,)) == [((2,), (slice(0, 8),))]
    with pytest.raises(BadRequest):
        hyper_pieces((0, 0), (24, 10), (7, 10))


# ---- reference layouts against the fixture -----------------------------------------------

def ref_doc(path):
    entry = EXPECTED[path]
    return entry, json.loads((BUCKET / entry["key"]).read_text())


def read_range(file_uri, offset, size) -> bytes:
    bucket, key = split_uri(file_uri)
    with open(FIXTURE / bucket / key, "rb") as f:
        f.seek(offset)
        return f.read(size)


def check_expected(entry, arr):
    assert arr.shape == tuple(entry["shape"]["dims"])
    for s in entry["samples"]:
        assert arr[tuple(s["index"])] == s["value"]
    assert int(arr.astype("i8").sum()) == entry["summary"]["sum"]
    assert np.array_equal(arr, np.arange(240, dtype="<i4").reshape(24, 10))


def contiguous_rule(dims, itemsize, limit=8096 * 1024):
    """STORAGE.md §7's virtual chunk dims (for the test's own use)."""
    out = [1] * len(dims)
    b = itemsize
    for d in range(len(dims) - 1, -1, -1):
        if dims[d] * b < limit:
            out[d] = dims[d]
            b *= dims[d]
            continue
        n = dims[d]
        while n * b >= limit:
            n = -(-n // 2)
        out[d] = n
        break
    return tuple(out)


def test_fixture_contig_ref():
    entry, doc = ref_doc("/refs/contig_ref")
    layout = doc["creationProperties"]["layout"]
    dims = tuple(doc["shape"]["dims"])
    cdims = contiguous_rule(dims, 4)
    assert cdims == (24, 10)
    codec = codec_for(doc, cdims)
    assert codec.pad_short
    offset, length = contiguous_ref_range(layout, (0, 0), cdims, dims, 4)
    assert (offset, length) == (2048, 960)
    arr = codec.decode(read_range(layout["file_uri"], offset, length))
    check_expected(entry, arr)
    # a smaller virtual chunking of the same bytes reads the same values
    small = ChunkCodec(doc["type"], (5, 10), layout_class="H5D_CONTIGUOUS_REF")
    full = np.zeros((25, 10), "<i4")
    for k in range(5):
        off, ln = contiguous_ref_range(layout, (k, 0), (5, 10), dims, 4)
        full[k * 5:(k + 1) * 5] = small.decode(read_range(layout["file_uri"], off, ln))
    check_expected(entry, full[:24])
    assert not full[24:].any()                  # the clipped tail is zero padded


@pytest.mark.parametrize("path", ["/refs/chunked_ref", "/refs/chunked_ref_gz"])
def test_fixture_chunked_ref(path):
    entry, doc = ref_doc(path)
    layout = doc["creationProperties"]["layout"]
    cdims = tuple(layout["dims"])
    codec = codec_for(doc, cdims)
    arr = np.zeros(tuple(doc["shape"]["dims"]), "<i4")
    for i in range(3):
        loc = chunked_ref_range(layout, (i, 0))
        data = read_range(layout["file_uri"], *loc)
        if path.endswith("_gz"):
            assert zlib.decompressobj().decompress(data)     # raw zlib streams (HDF5)
        arr[i * 8:(i + 1) * 8] = codec.decode(data)
    assert chunked_ref_range(layout, (3, 0)) is None
    check_expected(entry, arr)


def _chunk_table():
    entry, doc = ref_doc("/refs/chunk_table")
    folder = BUCKET / entry["key"].replace(".dataset.json", "")
    codec = codec_for(doc, tuple(doc["shape"]["dims"]))
    return codec.decode((folder / "0_0").read_bytes())


def test_fixture_indirect():
    entry, doc = ref_doc("/refs/indirect")
    layout = doc["creationProperties"]["layout"]
    table = _chunk_table()
    assert table.shape == (3, 1)
    codec = codec_for(doc, tuple(layout["dims"]))
    arr = np.zeros((24, 10), "<i4")
    for i in range(3):
        uri, offset, size = indirect_entry(table[i, 0])
        assert uri is None and size > 0
        arr[i * 8:(i + 1) * 8] = codec.decode(read_range(layout["file_uri"], offset, size))
    check_expected(entry, arr)


def test_fixture_indirect_hyper():
    entry, doc = ref_doc("/refs/indirect_hyper")
    layout = doc["creationProperties"]["layout"]
    table = _chunk_table()
    cdims = tuple(layout["dims"])
    codec = codec_for(doc, cdims)
    chunk = codec.fill_chunk()
    pieces = hyper_pieces((0, 0), cdims, layout["hyper_dims"], table_shape=table.shape)
    assert len(pieces) == 3
    for table_index, slices in pieces:
        uri, offset, size = indirect_entry(table[table_index])
        data = read_range(uri or layout["file_uri"], offset, size)
        chunk[slices] = codec.decode_piece(data, layout["hyper_dims"])
    check_expected(entry, chunk)
    assert math.prod(cdims) == 240


def test_codec_for_default_chunk_dims_from_layout_module():
    """Without explicit chunk dims, codec_for asks server.core.layout.chunk_dims_of."""
    for path in ("/g1/float2d", "/scalar", "/g1/small_contig", "/refs/contig_ref",
                 "/refs/indirect_hyper"):
        entry, doc = ref_doc(path)
        want = {"/g1/float2d": (50, 100), "/scalar": (1,), "/g1/small_contig": (4, 5),
                "/refs/contig_ref": (24, 10), "/refs/indirect_hyper": (24, 10)}[path]
        assert codec_for(doc).chunk_dims == want
