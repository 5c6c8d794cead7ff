"""Damaged and hostile stored chunks (issue 13): a decompression bomb, garbage, a
truncated frame or a frame of another codec is a JSON 500 "damaged chunk" for the one
request that reads it, and decoding never allocates much more than the chunk's size.

Unit tests per codec (zlib/gzip streams, zstd frames, blosc1 frames of every codec,
bitshuffle-LZ4 blobs) measure the peak of Python-visible allocations (tracemalloc
sees numpy, bytes and the zlib/zstd/blosc output buffers); one end-to-end test plants
bombs in the POSIX bucket of a running cluster and checks the DN's memory and that it
keeps serving."""
import contextlib
import struct
import tracemalloc
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numcodecs import blosc as nc_blosc
from numcodecs import lz4 as nc_lz4

from server.core import codecs
from server.core.bitshuffle import bitshuffle_lz4_encode
from server.core.chunks import ChunkCodec
from server.core.codecs import blosc_header, pipeline_for
from server.core.errors import ServerError
from server.core.ids import chunk_id, chunk_key

from conftest import cluster_env, make_home, start_cluster

try:
    from zlib_ng import zlib_ng as fast_zlib
except ImportError:                                  # pragma: no cover
    fast_zlib = zlib

I4 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
VSTR = {"class": "H5T_STRING", "length": "H5T_VARIABLE", "charSet": "H5T_CSET_UTF8",
        "strPad": "H5T_STR_NULLTERM"}
SHUFFLE = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"}
BSHUF = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "bitshuffle"}   # HSDS 1.0.2 blobs
BITSHUFFLE = {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}
GZIP = {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 5}
ZSTD = {"class": "H5Z_FILTER_ZSTD", "id": 32015, "name": "zstd"}
LZ4 = {"class": "H5Z_FILTER_LZ4", "id": 32004, "name": "lz4"}
BLOSCLZ = {"class": "H5Z_FILTER_BLOSC", "id": 32001, "name": "blosclz"}

COUNT = 1024                       # elements of the chunk: 4 KB of int32
EXPECTED = COUNT * 4
MB = 1 << 20
BOUND = 1 * MB                     # peak allocation allowed while decoding a 4 KB chunk

PIPELINES = {"gzip": [GZIP], "shuffle+gzip": [SHUFFLE, GZIP], "zstd": [ZSTD],
             "lz4": [LZ4], "blosclz": [BLOSCLZ], "bitshuffle-lz4": [BSHUF, LZ4],
             "bitshuffle-blob": [BSHUF], "bitshuffle-0.9": [BITSHUFFLE, LZ4]}


def codec(filters, count=COUNT, type_json=I4):
    return ChunkCodec(type_json, (count,), filters)


def chunk_values(count=COUNT):
    return (np.arange(count) * 7 % 1001).astype("<i4")


@contextlib.contextmanager
def peak_allocation():
    """The peak of traced allocations (bytes) inside the block: box[0] afterwards."""
    box = [0]
    tracemalloc.start()
    try:
        yield box
    finally:
        box[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def assert_damaged(codec_, data, bound=BOUND, match="damaged chunk"):
    with peak_allocation() as peak:
        with pytest.raises(ServerError, match=match):
            codec_.decode(data)
    assert peak[0] < bound, f"decoding allocated {peak[0] / MB:.1f} MB"


# ---- bombs ------------------------------------------------------------------------

def zlib_bomb(nbytes, wbits=15) -> bytes:
    """A zlib (wbits 15) or gzip (31) stream of nbytes zeros, made without holding them."""
    comp = fast_zlib.compressobj(1, zlib.DEFLATED, wbits)
    block = bytes(MB)
    return b"".join(comp.compress(block) for _ in range(nbytes // MB)) + comp.flush()


def zstd_bomb(nbytes, content_size=True) -> bytes:
    params = zstandard.ZstdCompressionParameters.from_level(
        1, write_content_size=int(content_size))
    comp = zstandard.ZstdCompressor(compression_params=params).compressobj(
        size=nbytes if content_size else -1)
    block = bytes(MB)
    return b"".join(comp.compress(block) for _ in range(nbytes // MB)) + comp.flush()


def zstd_claim(nbytes) -> bytes:
    """A zstd frame header claiming nbytes of content, then one 128 KB RLE block."""
    fhd = 0xE0                             # 8-byte content size, single segment
    block = 1 | (1 << 1) | ((128 * 1024) << 3)           # last, RLE, 128 KB
    return (b"\x28\xb5\x2f\xfd" + bytes([fhd]) + struct.pack("<Q", nbytes)
            + block.to_bytes(3, "little") + b"\0")


def blosc_claim(nbytes, codec_bits=0) -> bytes:
    """A blosc1 header claiming nbytes in one block, then a few garbage bytes."""
    body = struct.pack("<I", 20) + struct.pack("<I", 8) + b"\x01" * 8
    return struct.pack("<BBBBIII", 2, 1, codec_bits << 5, 1, nbytes, nbytes,
                       16 + len(body)) + body


@pytest.mark.parametrize("wbits", [15, 31], ids=["zlib", "gzip"])
@pytest.mark.parametrize("filters", [[GZIP], [SHUFFLE, GZIP]], ids=["gzip", "shuffle+gzip"])
def test_zlib_bomb(wbits, filters):
    bomb = zlib_bomb(256 * MB, wbits)
    assert len(bomb) < 4 * MB
    assert_damaged(codec(filters), bomb, match="beyond")


def test_zlib_bomb_in_bitshuffle_pipeline():
    # a blob is allowed to be a little larger than the chunk, not 256 MB
    assert_damaged(codec([BSHUF, GZIP]), zlib_bomb(256 * MB), match="beyond")


@pytest.mark.parametrize("content_size", [True, False], ids=["sized", "unsized"])
def test_zstd_bomb(content_size):
    bomb = zstd_bomb(256 * MB, content_size)
    assert len(bomb) < MB
    assert_damaged(codec([ZSTD]), bomb)


def test_zstd_frame_claiming_a_gigabyte():
    assert zstandard.frame_content_size(zstd_claim(1 << 30)) == 1 << 30
    assert_damaged(codec([ZSTD]), zstd_claim(1 << 30), match="beyond")


@pytest.mark.parametrize("cname", ["blosclz", "lz4", "zlib", "zstd"])
def test_blosc_bomb(cname):
    """A real blosc frame of 16 MB of zeros (any codec) where a 4 KB chunk belongs."""
    frame = nc_blosc.compress(bytes(16 * MB), cname.encode(), 5, nc_blosc.NOSHUFFLE,
                              nc_blosc.AUTOBLOCKS, 1)
    assert blosc_header(frame)["nbytes"] == 16 * MB
    for filters in ([LZ4], [GZIP], [ZSTD], [SHUFFLE, BLOSCLZ]):
        assert_damaged(codec(filters), frame, match="beyond")


@pytest.mark.parametrize("codec_bits", [0, 1, 3, 4])
def test_blosc_header_claiming_a_gigabyte(codec_bits):
    claim = blosc_claim(1 << 30, codec_bits)
    assert blosc_header(claim) is not None         # a plausible frame header
    for filters in ([LZ4], [GZIP], [BSHUF, LZ4]):
        assert_damaged(codec(filters), claim, match="beyond")


def test_blosc_memcpyed_frame_larger_than_the_chunk():
    frame = nc_blosc.compress(np.random.default_rng(1).bytes(2 * EXPECTED), b"lz4", 0,
                              nc_blosc.NOSHUFFLE, nc_blosc.AUTOBLOCKS, 1)
    assert blosc_header(frame)["memcpyed"]
    assert_damaged(codec([LZ4]), frame, match="beyond")


def test_bitshuffle_blob_claiming_a_gigabyte():
    blob = bytearray(bitshuffle_lz4_encode(chunk_values().tobytes(), 4))
    struct.pack_into(">Q", blob, 0, 1 << 30)
    # the pipeline alone (no expected size: the variable-length limit applies)
    p = pipeline_for([BITSHUFFLE], I4)
    with peak_allocation() as peak:
        with pytest.raises(ServerError):
            p.decode(bytes(blob))
    assert peak[0] < 4 * MB
    # in a chunk of known size it is not this chunk's blob
    for filters in ([BITSHUFFLE], [BSHUF]):
        assert_damaged(codec(filters), bytes(blob))


def test_bitshuffle_lz4_block_inflating_beyond_its_block():
    """An LZ4 block that would inflate to 1 MB inside a blob whose blocks are 8 KB."""
    big = nc_lz4.compress(bytes(MB))[4:]
    blob = struct.pack(">QI", EXPECTED, EXPECTED) + struct.pack(">I", len(big)) + big
    for filters in ([BSHUF], [BITSHUFFLE]):
        assert_damaged(codec(filters), blob)
    # and the same blob inside a blosc frame
    frame = nc_blosc.compress(blob, b"lz4", 5, nc_blosc.NOSHUFFLE, nc_blosc.AUTOBLOCKS, 1)
    assert_damaged(codec([BSHUF, LZ4]), frame)


def test_variable_length_bomb(monkeypatch):
    """Variable-length chunks have no fixed size: decoding stops at a global limit."""
    monkeypatch.setattr(codecs, "MAX_DECODED_BYTES", 4 * MB)
    vcodec = ChunkCodec(VSTR, (10,), [GZIP])
    assert_damaged(vcodec, zlib_bomb(64 * MB), bound=12 * MB, match="beyond")
    assert_damaged(ChunkCodec(VSTR, (10,), [ZSTD]), zstd_bomb(64 * MB), bound=12 * MB)
    assert_damaged(ChunkCodec(VSTR, (10,), [LZ4]), blosc_claim(1 << 30, 1),
                   bound=12 * MB, match="beyond")
    # a genuine chunk still decodes
    arr = np.array(["a", "bc", ""] + ["x" * 100] * 7, dtype=object)
    assert vcodec.decode(vcodec.encode(arr)).tolist() == arr.tolist()


# ---- bytes that do not match the pipeline -----------------------------------------

def good_chunk(filters) -> bytes:
    if filters == [BITSHUFFLE, LZ4]:                # an HSDS 0.9 blob in a blosc frame
        blob = bitshuffle_lz4_encode(chunk_values().tobytes(), 4)
        return bytes(pipeline_for([LZ4], I4).encode(blob))
    return bytes(codec(filters).encode(chunk_values()))


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_good_chunks_decode(name):
    c = codec(PIPELINES[name])
    assert c.decode(good_chunk(PIPELINES[name])).tolist() == chunk_values().tolist()


@pytest.mark.parametrize("name", sorted(PIPELINES))
@pytest.mark.parametrize("size", [0, 1, 17, EXPECTED // 2, EXPECTED - 1, EXPECTED + 1,
                                  EXPECTED + 100, 3 * EXPECTED])
def test_garbage(name, size):
    """Random bytes of any length but exactly the chunk's (read raw, as HSDS does)."""
    garbage = np.random.default_rng(size).bytes(size)
    assert_damaged(codec(PIPELINES[name]), garbage)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_truncated_frames(name):
    good = good_chunk(PIPELINES[name])
    for cut in (len(good) - 1, len(good) // 2, 20, 4):
        assert_damaged(codec(PIPELINES[name]), good[:cut])


def other_frames(values_) -> dict:
    raw = values_.tobytes()
    return {"zlib": zlib.compress(raw), "gzip": zlib.compress(raw, wbits=31),
            "zstd": zstandard.ZstdCompressor().compress(raw),
            "lz4-block": nc_lz4.compress(raw),
            "bitshuffle-blob": bitshuffle_lz4_encode(raw, 4)}


@pytest.mark.parametrize("name,other", [
    ("gzip", "zstd"), ("gzip", "lz4-block"), ("gzip", "bitshuffle-blob"),
    ("shuffle+gzip", "zstd"), ("zstd", "zlib"), ("zstd", "gzip"), ("zstd", "lz4-block"),
    ("lz4", "zlib"), ("lz4", "zstd"), ("lz4", "lz4-block"), ("blosclz", "gzip"),
    ("bitshuffle-lz4", "zstd"), ("bitshuffle-lz4", "zlib"), ("bitshuffle-blob", "zlib"),
    ("bitshuffle-0.9", "zstd")])
def test_frame_of_another_codec(name, other):
    frame = other_frames(chunk_values())[other]
    assert_damaged(codec(PIPELINES[name]), frame)


def test_blosc_frame_of_another_blosc_codec_decodes():
    """Any blosc1 frame holding the chunk is read whatever its codec (HSDS does too)."""
    for cname in ("blosclz", "lz4", "zlib", "zstd"):
        frame = nc_blosc.compress(chunk_values().tobytes(), cname.encode(), 5,
                                  nc_blosc.SHUFFLE, nc_blosc.AUTOBLOCKS, 1)
        assert codec([GZIP]).decode(frame).tolist() == chunk_values().tolist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PIPELINES)), seed=st.integers(0, 2 ** 32 - 1),
       flips=st.integers(1, 24), cut=st.integers(0, 3))
def test_mutated_chunks_decode_or_fail_cleanly(name, seed, flips, cut):
    """Random byte changes (header included) and cuts: either the chunk decodes to
    exactly its size or the answer is ServerError -- nothing else escapes."""
    rng = np.random.default_rng(seed)
    data = bytearray(good_chunk(PIPELINES[name]))
    for _ in range(flips):
        pos = int(rng.integers(0, min(len(data), 64) if rng.random() < 0.5 else len(data)))
        data[pos] = int(rng.integers(0, 256))
    if cut:
        data = data[:int(rng.integers(1, len(data)))]
    c = codec(PIPELINES[name])
    try:
        arr = c.decode(bytes(data))
    except ServerError:
        return
    assert arr.shape == (COUNT,) and arr.nbytes == EXPECTED


def test_variable_length_garbage():
    vcodec = ChunkCodec(VSTR, (10,), [GZIP])
    for data in (b"\xff\xff\xff\x7fab", np.random.default_rng(3).bytes(999),
                 zlib.compress(b"\xff\xff\xff\x7fab")):
        with pytest.raises(ServerError):
            vcodec.decode(data)


# ---- end to end: bombs planted in a running cluster's bucket ------------------------

U1 = ("test_user1", "test")
ACC = {"Accept": "application/octet-stream"}


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def test_planted_bombs_fail_one_read_each(tmp_path):
    env = cluster_env(tmp_path, "posix", MIN_CHUNK_SIZE="1k")     # keep our 4 KB chunks
    cluster = start_cluster(tmp_path, env, dn_count=1)
    try:
        make_home(cluster.endpoint)
        domain = f"/home/test_user1/b{uuid.uuid4().hex[:8]}.h5"
        params = {"domain": domain}

        def call(method, path, **kw):
            return requests.request(method, cluster.endpoint + path, auth=U1, timeout=60,
                                    params={**params, **kw.pop("params", {})}, **kw)

        root = call("PUT", "/").json()["root"]

        def dataset(name, filters):
            rsp = call("POST", "/datasets", json={
                "type": "H5T_STD_I32LE", "shape": [4 * COUNT],
                "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [COUNT]},
                                       "filters": filters},
                "link": {"id": root, "name": name}})
            assert rsp.status_code == 201, rsp.text
            did = rsp.json()["id"]
            layout = call("GET", f"/datasets/{did}").json()["layout"]
            assert layout["dims"] == [COUNT], layout
            return did

        good = dataset("good", [SHUFFLE, GZIP])
        values_ = np.arange(4 * COUNT, dtype="<i4")
        assert call("PUT", f"/datasets/{good}/value", data=values_.tobytes(),
                    headers={"Content-Type": "application/octet-stream"}).status_code == 200
        assert call("PUT", "/", data=b"null",
                    headers={"Content-Type": "application/json"},
                    params={"flush": 1}).status_code in (200, 204)

        # never read nor written: the DN has no cached copy and loads what we plant
        bucket = Path(env["ROOT_DIR"]) / env["BUCKET_NAME"]
        planted = {
            "zlib": ([GZIP], zlib_bomb(1024 * MB)),                   # 1 GB of zeros
            "zstd": ([ZSTD], zstd_claim(1 << 30)),
            "zstd-unsized": ([ZSTD], zstd_bomb(1024 * MB, content_size=False)),
            "blosc": ([LZ4], blosc_claim((1 << 31) - 64, 1)),
            "bitshuffle": ([BITSHUFFLE], bitshuffle_claim()),
            "garbage": ([GZIP], np.random.default_rng(0).bytes(EXPECTED + 5)),
            "truncated": ([ZSTD], zstandard.ZstdCompressor().compress(
                values_[:COUNT].tobytes())[:-3]),
        }
        ids = {}
        for name, (filters, data) in planted.items():
            ids[name] = dataset(name, filters)
            path = bucket / chunk_key(chunk_id(ids[name], (0,)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        pid = int((tmp_path / "run" / "dn-001.pid").read_text())
        rss_before = vm_kb(pid, "VmRSS")
        hwm_before = vm_kb(pid, "VmHWM")
        for name, did in ids.items():
            for _ in range(2):                     # again: no cached half-state
                rsp = call("GET", f"/datasets/{did}/value", params={"select": "[0:10]"})
                # a data fault at rest: 500 as HSDS answers (502 where the DN names
                # storage as the culprit); JSON, with what is wrong and never a bare 500
                assert rsp.status_code in (500, 502), (name, rsp.status_code, rsp.text[:300])
                assert rsp.headers["Content-Type"].startswith("application/json")
                assert "damaged chunk" in rsp.json()["error"], (name, rsp.text)
            # the other chunks of the same dataset are fine (fill)
            rsp = call("GET", f"/datasets/{did}/value", params={"select": "[1024:1030]"})
            assert rsp.status_code == 200 and rsp.json()["value"] == [0] * 6
            # and so is another dataset
            rsp = call("GET", f"/datasets/{good}/value", headers=ACC)
            assert rsp.status_code == 200
            assert np.array_equal(np.frombuffer(rsp.content, "<i4"), values_)
        rss_after, hwm_after = vm_kb(pid, "VmRSS"), vm_kb(pid, "VmHWM")
        # a bomb that inflated would have taken 1 GB; allow the reads' own working set
        assert hwm_after - max(hwm_before, rss_before) < 150 * 1024, (hwm_before, hwm_after)
        assert rss_after < rss_before + 150 * 1024, (rss_before, rss_after)

        log = (tmp_path / "run" / "dn-001.log").read_text()
        assert "Traceback" not in log
        damaged = [line for line in log.splitlines() if "damaged chunk" in line]
        assert 1 <= len(damaged) <= 2 * len(ids), damaged      # one line per failed read
        assert "Traceback" not in (tmp_path / "run" / "sn.log").read_text()
    finally:
        cluster.stop()


def bitshuffle_claim() -> bytes:
    blob = bytearray(bitshuffle_lz4_encode(np.arange(COUNT, dtype="<i4").tobytes(), 4))
    struct.pack_into(">Q", blob, 0, (1 << 31) - 64)
    return bytes(blob)
