"""Bitshuffle end to end (issue 12): datasets created with the bitshuffle filter -- as
h5pyd 1.0.0 and 0.24.0 ask for it, and in every explicit filter form -- are accepted,
report their filters back as HSDS 1.0.2 does, read back equal, and are stored in the
bytes HSDS 1.0.2 stores:

* H5Z_FILTER_BITSHUFFLE changes nothing in storage (1.0.2 accepts it and stores the
  chunk as if it were absent: raw, or one blosc frame when a compressor is listed);
* an H5Z_FILTER_SHUFFLE filter named "bitshuffle" is 1.0.2's real bit shuffle: a
  bitshuffle-LZ4 blob (12-byte header, 2048-element blocks).

The expected chunk bytes below were read from the files stock HSDS 1.0.2 wrote for the
same dataset (i4 values range(-5, 35), one chunk of 40).
"""
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from numcodecs import blosc as nc_blosc

from conftest import H5PYD_024, make_bucket
from server.core.ids import chunk_id, chunk_key

U1 = ("test_user1", "test")
I32 = "H5T_STD_I32LE"
VALUES = list(range(-5, 35))
RAW = np.array(VALUES, dtype="<i4").tobytes()

BS = {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}
SHUF = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "shuffle"}
SB = {"class": "H5Z_FILTER_SHUFFLE", "id": 2, "name": "bitshuffle"}
GZ4 = {"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 4}
LZ4 = {"class": "H5Z_FILTER_LZ4", "id": 32004, "name": "lz4"}

# what HSDS 1.0.2 stored for [SHUFFLE named bitshuffle] (the bitshuffle-LZ4 blob)
HSDS_SB_BLOB = bytes.fromhex(
    "00000000000000a0000020000000002a1055010010990100101e0100f0001fe01fe01f1f00e0ff1f1f"
    "000000e005001f00050065501f00000000")
# the first 12 bytes of HSDS's frame for [BITSHUFFLE, DEFLATE 4]: zlib, no shuffle flag,
# typesize 1, 160 bytes in one block (the deflate stream after it may differ: zlib-ng)
HSDS_BS_GZIP_HEAD = bytes.fromhex("02016001a0000000a0000000")

# (filters sent, filters reported, what is stored: "raw", "blob" or a blosc
#  (codec, shuffle flag, inner bytes) triple)
FORMS = {
    "bs_object": ([BS], [BS], "raw"),
    "bs_class_only": ([{"class": "H5Z_FILTER_BITSHUFFLE"}], [BS], "raw"),
    "bs_string": (["bitshuffle"], [BS], "raw"),
    "bs_id": ([32008], [BS], "raw"),
    "bs_user_by_id": ([{"class": "H5Z_FILTER_USER", "id": 32008}],
                      [{"class": "H5Z_FILTER_USER", "id": 32008, "name": "bitshuffle"}], "raw"),
    "bs_fletcher": ([BS, {"class": "H5Z_FILTER_FLETCHER32", "id": 3}],
                    [BS, {"class": "H5Z_FILTER_FLETCHER32", "id": 3, "name": "fletcher32"}],
                    "raw"),
    "bs_gzip": ([BS, {"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 4}], [BS, GZ4],
                ("zlib", False, RAW)),
    "shuffle_bs_gzip": ([SHUF, BS, GZ4], [SHUF, BS, GZ4], ("zlib", True, RAW)),
    "bs_lz4": ([BS, "lz4"], [BS, LZ4], ("lz4", False, RAW)),
    "sb": ([{"class": "H5Z_FILTER_SHUFFLE", "name": "bitshuffle"}], [SB], "blob"),
    "sb_lz4": ([SB, LZ4], [SB, LZ4], ("lz4", False, HSDS_SB_BLOB)),
    "sb_gzip": ([SB, GZ4], [SB, GZ4], ("zlib", False, HSDS_SB_BLOB)),
}


class Domain:
    def __init__(self, endpoint, path=None):
        self.endpoint = endpoint
        self.path = path or f"/home/test_user1/bs{uuid.uuid4().hex[:10]}.h5"

    def req(self, method, path, **kw):
        params = {"domain": self.path, **kw.pop("params", {})}
        return requests.request(method, self.endpoint + path, params=params, auth=U1,
                                timeout=60, **kw)

    def ok(self, method, path, status, **kw):
        rsp = self.req(method, path, **kw)
        assert rsp.status_code == status, (method, path, rsp.status_code, rsp.text)
        return rsp.json() if rsp.content else None

    def flush(self):
        self.ok("PUT", "/", 204, json={"flush": 1})

    def links(self) -> dict:
        root = self.ok("GET", "/", 200)["root"]
        return {ln["title"]: ln["id"] for ln in self.ok("GET", f"/groups/{root}/links",
                                                        200)["links"]}


def stored(server, dset_id, index) -> bytes:
    """The bytes of a chunk object as the bucket holds them."""
    key = chunk_key(chunk_id(dset_id, index))
    if server.backend == "posix":
        return (Path(server.env["ROOT_DIR"]) / server.bucket / key).read_bytes()
    s3 = make_bucket(server.env["AWS_S3_GATEWAY"], server.bucket)
    return s3.get_object(Bucket=server.bucket, Key=key)["Body"].read()


def check_stored(data: bytes, expect, raw: bytes):
    if expect == "raw":
        assert data == raw
    elif expect == "blob":
        assert data == HSDS_SB_BLOB
    else:
        codec, shuffle, inner = expect
        flags = data[2]
        assert data[0] == 2 and data[3] == 1                # blosc1 frame, typesize 1
        assert flags >> 5 == {"lz4": 1, "zlib": 3}[codec]
        assert bool(flags & 1) == shuffle and not flags & 4  # never blosc's bitshuffle
        assert nc_blosc.decompress(data) == inner


def test_explicit_filter_forms(server):
    dom = Domain(server.endpoint)
    root = dom.ok("PUT", "/", 201)["root"]
    ids = {}
    for name, (sent, reported, _) in FORMS.items():
        body = {"type": I32, "shape": [40], "link": {"id": root, "name": name},
                "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [40]},
                                       "filters": sent}}
        rsp = dom.ok("POST", "/datasets", 201, json=body)
        ids[name] = rsp["id"]
        doc = dom.ok("GET", f"/datasets/{rsp['id']}", 200)
        assert doc["creationProperties"]["filters"] == reported, name
        dom.ok("PUT", f"/datasets/{rsp['id']}/value", 200, json={"value": VALUES})
        assert dom.ok("GET", f"/datasets/{rsp['id']}/value", 200)["value"] == VALUES, name
        got = dom.req("GET", f"/datasets/{rsp['id']}/value", params={"select": "[3:37:5]"},
                      headers={"Accept": "application/octet-stream"})
        assert np.frombuffer(got.content, "<i4").tolist() == VALUES[3:37:5]
    dom.flush()
    for name, (_, _, expect) in FORMS.items():
        check_stored(stored(server, ids[name], (0,)), expect, RAW)
        if name == "bs_gzip":
            assert stored(server, ids[name], (0,))[:12] == HSDS_BS_GZIP_HEAD
        # read back from storage, not a cache: a fresh partial write then a full read
        dom.ok("PUT", f"/datasets/{ids[name]}/value", 200, params={"select": "[0:1]"},
               json={"value": [-5]})
        assert dom.ok("GET", f"/datasets/{ids[name]}/value", 200)["value"] == VALUES, name


def test_bitshuffle_variable_length_and_compound(server):
    """Variable-length types are stored raw (HSDS does not shuffle them); a compound
    round-trips through the blob."""
    dom = Domain(server.endpoint)
    root = dom.ok("PUT", "/", 201)["root"]
    vstr = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "strPad": "H5T_STR_NULLTERM",
            "length": "H5T_VARIABLE"}
    cmpd = {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": "H5T_STD_I16LE"},
                                                {"name": "b", "type": "H5T_IEEE_F64LE"}]}
    cases = [(vstr, ["a", "", "xyz"]), (cmpd, [[i, i * 1.5] for i in range(2053)])]
    for i, (type_json, values) in enumerate(cases):
        for filters in ([SB], [BS], [SB, "zstd"]):
            body = {"type": type_json, "shape": [len(values)],
                    "link": {"id": root, "name": f"d{i}_{len(filters)}_{filters[0]['id']}"},
                    "creationProperties": {"filters": filters,
                                           "layout": {"class": "H5D_CHUNKED",
                                                      "dims": [len(values)]}}}
            did = dom.ok("POST", "/datasets", 201, json=body)["id"]
            dom.ok("PUT", f"/datasets/{did}/value", 200, json={"value": values})
            dom.flush()
            assert dom.ok("GET", f"/datasets/{did}/value", 200)["value"] == values


# ---- h5pyd 1.0.0 and 0.24.0 -------------------------------------------------------------

CLIENT = r'''
import sys

import h5pyd
import numpy as np

endpoint, path = sys.argv[1], sys.argv[2]
kw = dict(endpoint=endpoint, username="test_user1", password="test")
OLD = h5pyd.__version__.startswith("0.")
i4 = (np.arange(300 * 200) % 1000 - 500).astype("<i4").reshape(300, 200)
f8 = np.linspace(-5, 5, 5003)
u2 = (np.arange(4100) * 3).astype("<u2")
made = {}
with h5pyd.File(path, "w", **kw) as f:
    if OLD:
        # 0.24.0 asks for it with shuffle="bitshuffle" (compression="bitshuffle" is
        # refused by the client itself: not among the server's compressors)
        made["bs_i4"] = f.create_dataset("bs_i4", data=i4, shuffle="bitshuffle",
                                         chunks=(100, 200))
        made["bs_gzip_f8"] = f.create_dataset("bs_gzip_f8", data=f8, shuffle="bitshuffle",
                                              compression="gzip", chunks=(2500,))
        made["bs_lz4_u2"] = f.create_dataset("bs_lz4_u2", data=u2, shuffle="bitshuffle",
                                             compression="lz4", chunks=(4100,))
        try:
            f.create_dataset("refused", data=i4, compression="bitshuffle")
            raise AssertionError("0.24.0 accepted compression='bitshuffle'")
        except ValueError:
            pass
    else:
        made["bs_i4"] = f.create_dataset("bs_i4", data=i4, compression="bitshuffle",
                                         chunks=(100, 200))
        made["bs_shuffle_f8"] = f.create_dataset("bs_shuffle_f8", data=f8, shuffle=True,
                                                 compression="bitshuffle", chunks=(2500,))
        made["bs_u2"] = f.create_dataset("bs_u2", data=u2, compression="bitshuffle")
    print("ok write", flush=True)
    f["bs_i4"][10:20, 5:9] = -np.ones((10, 4), "<i4")
    i4[10:20, 5:9] = -1
data = {"bs_i4": i4, "bs_gzip_f8": f8, "bs_lz4_u2": u2, "bs_shuffle_f8": f8, "bs_u2": u2}
with h5pyd.File(path, "r", **kw) as f:
    for name in made:
        d = f[name]
        want = data[name]
        assert d.shape == want.shape and d.dtype == want.dtype, (name, d.shape, d.dtype)
        assert np.array_equal(d[...], want), name
        assert np.array_equal(d[1:-1:3], want[1:-1:3]), name
        print("ok", name, flush=True)
print("all ok")
'''

EXPECTED_FILTERS = {
    "h5pyd-1.0.0": {"bs_i4": [BS], "bs_shuffle_f8": [SHUF, BS], "bs_u2": [BS]},
    "h5pyd-0.24.0": {"bs_i4": [BS], "bs_gzip_f8": [BS, GZ4],
                     "bs_lz4_u2": [BS, {"class": "H5Z_FILTER_USER", "name": "lz4",
                                        "id": 32004}]},
}


@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_h5pyd_bitshuffle_round_trip(server, client, tmp_path):
    python = sys.executable if client == "h5pyd-1.0.0" else str(H5PYD_024)
    if not Path(python).exists():
        pytest.skip("h5pyd 0.24.0 venv missing (./testall.sh creates it)")
    script = tmp_path / "h5pyd_bitshuffle.py"
    script.write_text(CLIENT)
    dom = Domain(server.endpoint)
    proc = subprocess.run([python, str(script), server.endpoint, dom.path],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all ok" in proc.stdout
    links = dom.links()
    assert set(links) == set(EXPECTED_FILTERS[client])
    for name, want in EXPECTED_FILTERS[client].items():
        doc = dom.ok("GET", f"/datasets/{links[name]}", 200)
        assert doc["creationProperties"]["filters"] == want, (name, doc["creationProperties"])
    # H5Z_FILTER_BITSHUFFLE alone: chunks are stored as raw bytes, as HSDS 1.0.2 does
    # (the chunk shape is the one the client settled on)
    dom.flush()
    i4 = (np.arange(300 * 200) % 1000 - 500).astype("<i4").reshape(300, 200)
    i4[10:20, 5:9] = -1
    rows, cols = dom.ok("GET", f"/datasets/{links['bs_i4']}", 200)[
        "creationProperties"]["layout"]["dims"]
    assert cols == 200 and 300 % rows == 0
    for k in range(300 // rows):
        assert stored(server, links["bs_i4"], (k, 0)) == i4[k * rows:(k + 1) * rows].tobytes()
