"""Datasets and their values over plain HTTP on real SN + DN processes (POSIX and S3):
creation properties, selections, binary and JSON values, points, resize and append,
fill values, filters, queries, broadcast, streaming and 413."""
import json
import math
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import cluster_env, make_bucket, make_home, run_h5pyd_client, start_cluster
from server.core.ids import dataset_prefix

U1 = ("test_user1", "test")
BIN = {"Content-Type": "application/octet-stream"}
ACC = {"Accept": "application/octet-stream"}
F32 = "H5T_IEEE_F32LE"
I32 = "H5T_STD_I32LE"


class Domain:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.path = f"/home/test_user1/v{uuid.uuid4().hex[:10]}.h5"
        self.root = self.ok("PUT", "/", 201)["root"]

    def req(self, method, path, **kw):
        params = {"domain": self.path, **kw.pop("params", {})}
        return requests.request(method, self.endpoint + path, params=params, auth=U1,
                                timeout=60, **kw)

    def ok(self, method, path, status=200, **kw):
        rsp = self.req(method, path, **kw)
        assert rsp.status_code == status, (method, path, rsp.status_code, rsp.text[:500])
        if rsp.headers.get("Content-Type", "").startswith("application/octet-stream"):
            return rsp.content
        return rsp.json() if rsp.content else None

    def dataset(self, type_json, shape=None, **body):
        body["type"] = type_json
        if shape is not None:
            body["shape"] = shape
        return self.ok("POST", "/datasets", 201, json=body)["id"]

    def put_bin(self, did, arr, **params):
        return self.ok("PUT", f"/datasets/{did}/value", data=np.ascontiguousarray(arr).tobytes(),
                       headers=BIN, params=params)

    def get_bin(self, did, dtype, **params):
        raw = self.ok("GET", f"/datasets/{did}/value", headers=ACC, params=params)
        return np.frombuffer(raw, dtype)


@pytest.fixture
def dom(server):
    return Domain(server.endpoint)


def test_create_and_describe(dom):
    did = dom.dataset(F32, [10, 20], maxdims=[0, 20],
                      creationProperties={"layout": {"class": "H5D_CHUNKED", "dims": [5, 20]},
                                          "fillValue": -1.0, "CreateOrder": 1})
    doc = dom.ok("GET", f"/datasets/{did}")
    assert doc["type"] == {"class": "H5T_FLOAT", "base": F32}
    assert doc["shape"] == {"class": "H5S_SIMPLE", "dims": [10, 20],
                            "maxdims": ["H5S_UNLIMITED", 20]}
    assert doc["layout"]["class"] == "H5D_CHUNKED"
    assert doc["creationProperties"]["fillValue"] == -1.0
    assert doc["creationProperties"]["CreateOrder"] == 1
    assert dom.ok("GET", f"/datasets/{did}/shape")["shape"]["dims"] == [10, 20]
    assert dom.ok("GET", f"/datasets/{did}/type")["type"]["base"] == F32
    scalar = dom.ok("GET", f"/datasets/{dom.dataset(I32)}")
    assert scalar["shape"] == {"class": "H5S_SCALAR"} and "creationProperties" in scalar
    null = dom.ok("GET", f"/datasets/{dom.dataset(I32, 'H5S_NULL')}")
    assert null["shape"] == {"class": "H5S_NULL"}
    for bad in ({"type": "H5T_STD_I32"}, {"type": I32, "shape": [-1]},
                {"type": I32, "shape": {"class": "H5S_SIMPLE", "dims": [3]}},
                {"type": I32, "shape": [10], "maxdims": [5]},
                {"type": I32, "shape": [10], "creationProperties": {"fillValue": "XXXX"}},
                {"type": I32, "shape": [10], "creationProperties": {"filters": ["szip"]}},
                {"type": I32, "shape": [10], "creationProperties": {
                    "layout": {"class": "H5D_CHUNKED", "dims": [0]}}}):
        assert dom.req("POST", "/datasets", json=bad).status_code == 400, bad
    made = dom.ok("POST", "/datasets", 201, json={"type": I32, "shape": [4], "link": {
        "id": dom.root, "name": "linked"}})
    assert dom.ok("GET", "/datasets/", params={"h5path": "/linked"})["id"] == made["id"]
    assert dom.ok("GET", "/datasets")["datasets"] == [made["id"]]


def test_values_binary_and_json(dom):
    arr = np.arange(190 * 290, dtype="<f4").reshape(190, 290)
    did = dom.dataset(F32, [190, 290], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [50, 100]}, "fillValue": -1.0})
    # unwritten: fill
    assert np.all(dom.get_bin(did, "<f4", select="[0:10,0:10]") == -1)
    dom.put_bin(did, arr[0:100, 0:200], select="[0:100,0:200]")
    dom.put_bin(did, arr[150:190, 250:290], select="[150:190,250:290]")
    got = dom.get_bin(did, "<f4").reshape(190, 290)
    want = np.full_like(arr, -1)
    want[0:100, 0:200] = arr[0:100, 0:200]
    want[150:190, 250:290] = arr[150:190, 250:290]
    assert np.array_equal(got, want)
    # strided, single column, single index, coordinate lists
    assert np.array_equal(dom.get_bin(did, "<f4", select="[3:97:7,5:199:11]"),
                          want[3:97:7, 5:199:11].ravel())
    assert np.array_equal(dom.get_bin(did, "<f4", select="[0:190,17:18]"), want[:, 17])
    assert np.array_equal(dom.get_bin(did, "<f4", select="[5,[3,150,7,7]]"),
                          want[5, [3, 150, 7, 7]])
    assert np.array_equal(dom.get_bin(did, "<f4", select="[[1,120,60],[2,280,3]]"),
                          want[[1, 120, 60], [2, 280, 3]])
    assert np.array_equal(dom.get_bin(did, "<f4", select="[0:4,[7,4,2]]"),
                          want[0:4][:, [7, 4, 2]].ravel())
    # JSON
    body = dom.ok("GET", f"/datasets/{did}/value", params={"select": "[2:4,0:3]"})
    assert body["value"] == want[2:4, 0:3].tolist() and len(body["hrefs"]) == 4
    flat = dom.ok("GET", f"/datasets/{did}/value", params={"select": "[2:3,0:4]",
                                                          "reduce_dim": 1})["value"]
    assert flat == want[2, 0:4].tolist()
    dom.ok("PUT", f"/datasets/{did}/value", json={"value": [[1, 2], [3, 4]]},
           params={"select": "[0:2,0:2]"})
    dom.ok("PUT", f"/datasets/{did}/value", json={"value": [5, 6], "start": [2, 0],
                                                  "stop": [3, 2]})
    assert dom.ok("GET", f"/datasets/{did}/value",
                  params={"select": "[0:3,0:2]"})["value"] == [[1, 2], [3, 4], [5, 6]]
    # errors
    for sel in ("[0:191,0:1]", "[5:2,0:1]", "[0:1]", "[0:1,0:1:0]", "0:1,0:1", "[a:b,0:1]"):
        assert dom.req("GET", f"/datasets/{did}/value", params={"select": sel}).status_code \
            == 400, sel
    assert dom.req("PUT", f"/datasets/{did}/value", data=b"\0" * 36, headers=BIN,
                   params={"select": "[0:1,0:10]"}).status_code == 400
    assert dom.req("PUT", f"/datasets/{did}/value", data=b"xx",
                   headers={"Content-Type": "text/plain"}).status_code == 400


def test_types_round_trip(dom):
    # big-endian ints stream big-endian; compound with fields; fixed strings; bool
    be = dom.dataset("H5T_STD_I32BE", [4])
    dom.put_bin(be, np.array([1000, -1, 7, 0], ">i4"))
    raw = dom.ok("GET", f"/datasets/{be}/value", headers=ACC)
    assert raw[:4] == b"\x00\x00\x03\xe8"
    ctype = {"class": "H5T_COMPOUND", "fields": [
        {"name": "a", "type": I32}, {"name": "b", "type": "H5T_IEEE_F64LE"},
        {"name": "s", "type": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                               "strPad": "H5T_STR_NULLPAD", "length": 7}}]}
    cdt = np.dtype([("a", "<i4"), ("b", "<f8"), ("s", "S7")])
    cid = dom.dataset(ctype, [3])
    rows = np.array([(1, 1.5, b"one"), (2, 2.5, b"two"), (3, 3.5, b"three")], cdt)
    dom.put_bin(cid, rows)
    assert np.array_equal(dom.get_bin(cid, cdt), rows)
    assert dom.ok("GET", f"/datasets/{cid}/value", params={"fields": "s:a"})["value"] == \
        [["one", 1], ["two", 2], ["three", 3]]
    dom.ok("PUT", f"/datasets/{cid}/value", json={"value": [[10.5], [20.5], [30.5]]},
           params={"fields": "b"})
    assert dom.ok("GET", f"/datasets/{cid}/value")["value"][2] == [3, 30.5, "three"]
    dom.ok("PUT", f"/datasets/{cid}/value", json={"value": [9, 9.5, "12345678"]},
           params={"select": "[1:2]"})
    assert dom.ok("GET", f"/datasets/{cid}/value",
                  params={"select": "[1:2]"})["value"] == [[9, 9.5, "1234567"]]
    assert dom.req("GET", f"/datasets/{cid}/value", params={"fields": "nope"}).status_code == 400
    # scalar
    sid = dom.dataset("H5T_IEEE_F64LE")
    dom.ok("PUT", f"/datasets/{sid}/value", json={"value": 3.5})
    assert dom.ok("GET", f"/datasets/{sid}/value")["value"] == 3.5
    assert dom.get_bin(sid, "<f8").tolist() == [3.5]
    # vlen strings, JSON and binary, unwritten -> 0
    vstr = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "strPad": "H5T_STR_NULLTERM",
            "length": "H5T_VARIABLE"}
    vid = dom.dataset(vstr, [4])
    dom.ok("PUT", f"/datasets/{vid}/value", json={"value": ["a", "\u00e9t\u00e9"]},
           params={"select": "[0:2]"})
    assert dom.ok("GET", f"/datasets/{vid}/value")["value"] == ["a", "\u00e9t\u00e9", 0, 0]
    raw = dom.ok("GET", f"/datasets/{vid}/value", headers=ACC, params={"select": "[0:2]"})
    assert raw == b"\x01\x00\x00\x00a\x05\x00\x00\x00" + "\u00e9t\u00e9".encode()
    dom.ok("PUT", f"/datasets/{vid}/value", data=b"\x02\x00\x00\x00hi", headers=BIN,
           params={"select": "[3:4]"})
    assert dom.ok("GET", f"/datasets/{vid}/value")["value"][3] == "hi"
    # bool
    bid = dom.dataset({"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                     "base": "H5T_STD_I8LE"},
                       "mapping": {"FALSE": 0, "TRUE": 1}}, [3])
    dom.ok("PUT", f"/datasets/{bid}/value", json={"value": [True, False, True]})
    assert dom.ok("GET", f"/datasets/{bid}/value")["value"] == [True, False, True]


def test_array_type_values(dom):
    """Elements of an array type: fill, JSON and binary, hyperslabs and points (an answer
    array once got the type's dims twice)."""
    for dims, shape in (([2], [3]), ([2, 2], [3, 2]), (3, [4]), ([1], [5])):
        inner = [dims] if isinstance(dims, int) else dims
        did = dom.dataset({"class": "H5T_ARRAY", "base": "H5T_STD_I32LE", "dims": dims}, shape)
        assert dom.ok("GET", f"/datasets/{did}/value")["value"] == \
            np.zeros(shape + inner, "i4").tolist()
        arr = np.arange(math.prod(shape + inner), dtype="<i4").reshape(shape + inner)
        dom.put_bin(did, arr)
        assert dom.ok("GET", f"/datasets/{did}/value")["value"] == arr.tolist()
        assert np.array_equal(dom.get_bin(did, "<i4"), arr.reshape(-1))
        select = "[1:3" + ",:" * (len(shape) - 1) + "]"
        part = dom.ok("GET", f"/datasets/{did}/value", params={"select": select})["value"]
        assert part == arr[1:3].tolist()
        pts = [[1] + [0] * (len(shape) - 1), [2] + [0] * (len(shape) - 1)] if len(shape) > 1 \
            else [1, 2]
        got = dom.ok("POST", f"/datasets/{did}/value", json={"points": pts})["value"]
        assert got == [arr[tuple(p) if len(shape) > 1 else p].tolist() for p in pts]


def test_points_and_broadcast(dom):
    arr = np.arange(100, dtype="<i4").reshape(10, 10)
    did = dom.dataset(I32, [10, 10])
    dom.put_bin(did, arr)
    pts = np.array([[0, 0], [9, 9], [3, 7], [3, 7], [5, 1]], dtype="<u8")
    raw = dom.ok("POST", f"/datasets/{did}/value", data=pts.tobytes(), headers={**BIN, **ACC})
    assert np.frombuffer(raw, "<i4").tolist() == [0, 99, 37, 37, 51]
    got = dom.ok("POST", f"/datasets/{did}/value", json={"points": [[1, 1], [2, 2]]})
    assert got["value"] == [11, 22]
    sel = dom.ok("POST", f"/datasets/{did}/value", json={"select": "[1:3,4:6]"})
    assert sel["value"] == [[14, 15], [24, 25]]
    assert dom.req("POST", f"/datasets/{did}/value", json={"points": [[10, 0]]}).status_code == 400
    assert dom.req("POST", f"/datasets/{did}/value", data=b"\0" * 12,
                   headers=BIN).status_code == 400
    dom.ok("PUT", f"/datasets/{did}/value", json={"points": [[0, 1], [8, 8]], "value": [-5, -6]})
    assert dom.ok("POST", f"/datasets/{did}/value", json={"points": [[0, 1], [8, 8]]})["value"] \
        == [-5, -6]
    # broadcast: one element, and a row over a block
    dom.put_bin(did, np.array([7], "<i4"), select="[0:2,0:10]", element_count=1)
    assert np.all(dom.get_bin(did, "<i4", select="[0:2,0:10]") == 7)
    dom.put_bin(did, np.arange(5, dtype="<i4"), select="[4:8,0:5]", element_count=5)
    assert np.array_equal(dom.get_bin(did, "<i4", select="[4:8,0:5]").reshape(4, 5),
                          np.tile(np.arange(5), (4, 1)))
    assert dom.req("PUT", f"/datasets/{did}/value", data=b"\0" * 12, headers=BIN,
                   params={"select": "[4:8,0:5]", "element_count": 3}).status_code == 400


def test_resize_append_and_shrink(dom):
    did = dom.dataset(I32, [10], maxdims=[0], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [4]}, "fillValue": 7})
    dom.put_bin(did, np.arange(10, dtype="<i4"))
    rsp = dom.ok("PUT", f"/datasets/{did}/shape", 201, json={"shape": [15]})
    assert rsp == {"selection": "[10:15]"}
    assert dom.get_bin(did, "<i4").tolist() == list(range(10)) + [7] * 5
    dom.ok("PUT", f"/datasets/{did}/value", data=np.array([20, 21], "<i4").tobytes(),
           headers=BIN, params={"append": 2})
    assert dom.ok("GET", f"/datasets/{did}/shape")["shape"]["dims"] == [17]
    dom.ok("PUT", f"/datasets/{did}/shape", 201, json={"shape": [3]})      # shrink
    dom.ok("PUT", f"/datasets/{did}/shape", 201, json={"extend": 9})      # grow again
    assert dom.get_bin(did, "<i4").tolist() == [0, 1, 2] + [7] * 9
    fixed = dom.dataset(I32, [4])
    assert dom.req("PUT", f"/datasets/{fixed}/shape", json={"shape": [5]}).status_code == 400
    limited = dom.dataset(I32, [4], maxdims=[6])
    assert dom.req("PUT", f"/datasets/{limited}/shape", json={"shape": [7]}).status_code == 409
    assert dom.req("PUT", f"/datasets/{limited}/shape", json={}).status_code == 400
    two = dom.dataset(I32, [2, 3], maxdims=[0, 3])
    assert dom.ok("PUT", f"/datasets/{two}/shape", 201, json={"extend": 2}) == \
        {"selection": "[2:4,:]"}


def test_filters_and_storage(dom, server):
    arr = (np.arange(1024 * 1024, dtype="<f4") % 17).reshape(1024, 1024)
    for name in ("gzip", "zstd", "lz4", "blosclz"):
        did = dom.dataset(F32, [1024, 1024], creationProperties={
            "layout": {"class": "H5D_CHUNKED", "dims": [512, 512]},
            "filters": [{"class": "H5Z_FILTER_SHUFFLE"}, name]})
        filters = dom.ok("GET", f"/datasets/{did}")["creationProperties"]["filters"]
        assert filters[0]["name"] == "shuffle" and filters[1]["name"] in (name, "deflate")
        dom.put_bin(did, arr)
        dom.ok("PUT", "/", 204, json={"flush": 1})
        assert np.array_equal(dom.get_bin(did, "<f4").reshape(1024, 1024), arr)
        usage = dom.ok("GET", f"/datasets/{did}", params={"verbose": 1})
        assert usage["num_chunks"] == 4 and 0 < usage["allocated_size"] < arr.nbytes


def test_queries(dom):
    ctype = {"class": "H5T_COMPOUND", "fields": [
        {"name": "sym", "type": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                                 "strPad": "H5T_STR_NULLPAD", "length": 4}},
        {"name": "open", "type": I32}, {"name": "close", "type": I32}]}
    dt = np.dtype([("sym", "S4"), ("open", "<i4"), ("close", "<i4")])
    rows = np.zeros(1000, dt)
    rows["sym"] = np.array([b"AAPL", b"EBAY", b"MSFT", b"GOOG"])[np.arange(1000) % 4]
    rows["open"] = np.arange(1000) * 10
    rows["close"] = rows["open"] + 5
    did = dom.dataset(ctype, [1000], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [300]}})
    dom.put_bin(did, rows)
    url = f"/datasets/{did}/value"
    got = dom.ok("GET", url, params={"query": "(open > 3000) & (open < 3100)"})["value"]
    assert [r[0] for r in got] == list(range(301, 310))
    assert got[0] == [301, "EBAY", 3010, 3015]
    aapl = dom.ok("GET", url, params={"query": "sym == b'AAPL'", "Limit": 5})["value"]
    assert [r[0] for r in aapl] == [0, 4, 8, 12, 16]
    inlist = dom.ok("GET", url, params={"query": "open < 100 where sym in (b'AAPL', b'EBAY')"})
    assert [r[0] for r in inlist["value"]] == [0, 1, 4, 5, 8, 9]
    sub = dom.ok("GET", url, params={"query": "open >= 0", "select": "[500:510]",
                                     "fields": "close"})["value"]
    assert sub[0] == [500, 5005] and len(sub) == 10
    raw = dom.ok("GET", url, params={"query": "open < 30"}, headers=ACC)
    assert np.array_equal(np.frombuffer(raw, dt), rows[:3])
    # binary answers carry rows only; a Limit still counts rows across chunks
    raw = dom.ok("GET", url, params={"query": "sym == b'GOOG'", "Limit": 80}, headers=ACC)
    assert np.array_equal(np.frombuffer(raw, dt), rows[3::4][:80])
    assert dom.ok("GET", url, params={"query": "open < 0"})["value"] == []
    for bad in ("gloop < blag", "foobar", "open = 3", "open < 3;", "(open < 3", "import os"):
        assert dom.req("GET", url, params={"query": bad}).status_code == 400, bad
    upd = dom.ok("PUT", url, json={"open": 999}, params={"query": "sym == b'MSFT'",
                                                          "Limit": 2})["value"]
    assert [r[0] for r in upd] == [2, 6] and upd[0][2] == 999
    assert dom.ok("GET", url, params={"select": "[2:3]"})["value"] == [["MSFT", 999, 25]]
    assert dom.ok("GET", url, params={"select": "[10:11]"})["value"] == [["MSFT", 100, 105]]
    plain = dom.dataset(I32, [10])
    assert dom.req("GET", f"/datasets/{plain}/value", params={"query": "x > 1"}).status_code \
        == 400


def test_nan_written_by_a_client_reaches_the_dns(dom):
    """A fill value and a query's update of NaN: frames between the SN and the DNs carry
    them as the client wrote them (not as null)."""
    def with_nan(method, path, status, body, **params):     # requests' json= refuses NaN
        return dom.ok(method, path, status, data=json.dumps(body), params=params,
                      headers={"Content-Type": "application/json"})

    did = with_nan("POST", "/datasets", 201, {"type": F32, "shape": [20], "creationProperties": {
        "layout": {"class": "H5D_CHUNKED", "dims": [5]}, "fillValue": float("nan")}})["id"]
    dom.put_bin(did, np.arange(5, dtype="<f4"), select="[5:10]")
    got = dom.get_bin(did, "<f4")
    assert np.isnan(got[:5]).all() and np.isnan(got[10:]).all()
    assert np.array_equal(got[5:10], np.arange(5, dtype="<f4"))
    ctype = {"class": "H5T_COMPOUND", "fields": [{"name": "n", "type": I32},
                                                 {"name": "x", "type": F32}]}
    dt = np.dtype([("n", "<i4"), ("x", "<f4")])
    rows = np.zeros(10, dt)
    rows["n"] = np.arange(10)
    tid = dom.dataset(ctype, [10], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [4]}})
    dom.put_bin(tid, rows)
    with_nan("PUT", f"/datasets/{tid}/value", 200, {"x": float("nan")}, query="n >= 7")
    got = dom.get_bin(tid, dt)
    assert np.isnan(got["x"][7:]).all() and (got["x"][:7] == 0).all()


def test_queries_of_simple_datasets(dom):
    """A non-compound dataset's elements are `_` in a query (HSDS 1.0.2, h5pyd 1.0's
    dset[..., query=]): the matching values in C order of the selection, any rank, any
    number of chunks; AND/OR spell & and |."""
    arr = np.fromfunction(lambda i, j: i * 10.0 + j / 10.0, (40, 80), dtype="f4")
    did = dom.dataset("H5T_IEEE_F32LE", [40, 80],
                      creationProperties={"layout": {"class": "H5D_CHUNKED", "dims": [7, 9]}})
    dom.put_bin(did, arr)
    for query, select, want in (
            ("_ > 100.0 AND _ < 200.0", None, arr[(arr > 100) & (arr < 200)]),
            ("(_ < 3) | (_ > 395)", None, arr[(arr < 3) | (arr > 395)]),
            ("_ > 395", "[38:40,0:80]", arr[38:40][arr[38:40] > 395]),
            ("_ > 2", "[0:3,10:20:3]", arr[0:3, 10:20:3][arr[0:3, 10:20:3] > 2])):
        params = {"query": query, **({"select": select} if select else {})}
        got = dom.ok("GET", f"/datasets/{did}/value", params=params)["value"]
        assert got == want.tolist(), (query, select)
        assert np.array_equal(dom.get_bin(did, "<f4", **params), want)
    limited = dom.ok("GET", f"/datasets/{did}/value", params={"query": "_ >= 0", "Limit": 5})
    assert limited["value"] == arr.reshape(-1)[:5].tolist()
    ints = dom.dataset("H5T_STD_I32LE", [20])
    dom.put_bin(ints, np.arange(20, dtype="<i4"))
    assert dom.ok("GET", f"/datasets/{ints}/value", params={"query": "_ > 15"})["value"] == \
        [16, 17, 18, 19]
    for bad in ("x > 15", "_ >", "a > 1 AND"):
        assert dom.req("GET", f"/datasets/{ints}/value", params={"query": bad}).status_code == 400
    assert dom.req("PUT", f"/datasets/{ints}/value", params={"query": "_ > 15"},
                   json={"_": 1}).status_code == 400


def test_delete_dataset_removes_chunks(dom, server):
    n = 1024 * 1024
    did = dom.dataset(I32, [n], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [n // 4]}})
    dom.put_bin(did, np.arange(n, dtype="<i4"))
    dom.ok("PUT", "/", 204, json={"flush": 1})
    assert dom.ok("GET", f"/datasets/{did}", params={"verbose": 1})["num_chunks"] == 4
    assert len(stored_keys(server, did)) == 5                 # 4 chunks + .dataset.json
    dom.ok("DELETE", f"/datasets/{did}")
    assert dom.req("GET", f"/datasets/{did}").status_code == 410
    assert dom.req("GET", f"/datasets/{did}/value").status_code == 410
    for _ in range(50):                                       # the purge runs in the background
        if not stored_keys(server, did):
            break
        time.sleep(0.1)
    assert stored_keys(server, did) == []


def stored_keys(server, dset_id) -> list:
    prefix = dataset_prefix(dset_id)
    if server.backend == "posix":
        folder = Path(server.env["ROOT_DIR"]) / server.bucket / prefix
        return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
    s3 = make_bucket(server.env["AWS_S3_GATEWAY"], server.bucket)
    rsp = s3.list_objects_v2(Bucket=server.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in rsp.get("Contents", []))


def posix_cluster(tmp_path_factory, name: str, **env):
    """A POSIX cluster with these settings, its home folder made; stopped after."""
    tmp = tmp_path_factory.mktemp(name)
    cluster = start_cluster(tmp, cluster_env(tmp, "posix", **env))
    make_home(cluster.endpoint)
    yield cluster
    cluster.stop()


def executor_of(cluster, tag: str) -> str:
    """Which executor ("dn", "sn", "lambda") read the last request tagged tag (its log line)."""
    lines = [ln for ln in cluster.sn_log.read_text().splitlines() if f"tag={tag}" in ln]
    return lines[-1].rsplit(" via ", 1)[-1]


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory):
    """A cluster whose max_request_size is 1 MiB: 413s and multi-page streams."""
    yield from posix_cluster(tmp_path_factory, "small", MAX_REQUEST_SIZE="1m")


def test_streaming_pages_and_413(small_limits):
    dom = Domain(small_limits.endpoint)
    arr = np.arange(1024 * 1024, dtype="<f4").reshape(1024, 1024)      # 4 MiB
    did = dom.dataset(F32, [1024, 1024], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [128, 1024]}})
    for i in range(0, 1024, 128):
        dom.put_bin(did, arr[i:i + 128], select=f"[{i}:{i + 128},0:1024]")
    rsp = dom.req("GET", f"/datasets/{did}/value", headers=ACC)
    assert rsp.status_code == 200 and int(rsp.headers["Content-Length"]) == arr.nbytes
    assert np.array_equal(np.frombuffer(rsp.content, "<f4").reshape(1024, 1024), arr)
    assert dom.req("GET", f"/datasets/{did}/value").status_code == 413          # JSON
    pts = np.zeros((300000, 2), "<u8")
    assert dom.req("POST", f"/datasets/{did}/value", data=pts.tobytes(),
                   headers={**BIN, **ACC}).status_code == 413


@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_h5pyd_dataset_scenario(server, client):
    run_h5pyd_client(server, client, "h5pyd_datasets.py")


def test_direct_reads_of_some_rows_read_only_those(server):
    """The SN reads a clean uncompressed chunk's touched rows as one byte range: rows
    inside chunks, across a chunk boundary, strides, a never-written chunk (fill)."""
    if server.backend != "posix":
        pytest.skip("the SN reads storage itself on POSIX")
    dom = Domain(server.endpoint)
    n = 1536                                  # 3 x 3 chunks of 512 x 512 (1 MiB: kept)
    arr = np.arange(n * n, dtype="<i4").reshape(n, n)
    did = dom.dataset(I32, [n, n], creationProperties={
        "fillValue": -1, "layout": {"class": "H5D_CHUNKED", "dims": [512, 512]}})
    dom.put_bin(did, arr[:, :1024], select=f"[0:{n},0:1024]")   # chunk column 2: never
    want = arr.copy()
    want[:, 1024:] = -1
    dom.ok("PUT", "/", 204, json={"flush": 1})
    for i, select in enumerate(("[5:60,0:1536]", "[480:560,0:1536]", "[0:1536:3,2:1500:2]",
                                "[1000:1536,1000:1536]", "[100:400:7,0:512]")):
        got = dom.get_bin(did, "<i4", select=select, tag=f"rows{i}")
        sel = tuple(slice(*(int(x) for x in part.split(":")))
                    for part in select.strip("[]").split(","))
        assert np.array_equal(got, want[sel].ravel()), select
        assert executor_of(server, f"rows{i}") == "sn", select


@pytest.fixture(scope="module")
def small_caches(tmp_path_factory):
    """A POSIX cluster of 2 DNs whose chunk caches hold 1 MiB each."""
    yield from posix_cluster(tmp_path_factory, "cold", CHUNK_MEM_CACHE_SIZE="1m")


def test_the_sn_inflates_clean_chunks_the_dns_no_longer_hold(small_caches):
    """A deflated dataset is read through the DNs while they likely hold its chunks
    decoded (just written or read), and by the SN itself once they cannot: the caches
    hold 2 of its 4 chunks."""
    dom = Domain(small_caches.endpoint)
    arr = (np.arange(1024 * 1024, dtype="<f4") % 977).reshape(1024, 1024)
    did = dom.dataset(F32, [1024, 1024], creationProperties={
        "layout": {"class": "H5D_CHUNKED", "dims": [256, 1024]},          # 1 MiB chunks
        "filters": [{"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 6}]})
    dom.put_bin(did, arr, select="[0:1024,0:1024]")

    def read(select, tag):
        return dom.get_bin(did, "<f4", select=select, tag=tag), executor_of(small_caches, tag)

    got, via = read("[768:1024,0:1024]", "dirty")
    assert np.array_equal(got, arr[768:].ravel()) and via == "dn"    # not in storage yet
    dom.ok("PUT", "/", 204, json={"flush": 1})
    got, via = read("[768:1024,0:1024]", "held")                    # the last chunk written
    assert np.array_equal(got, arr[768:].ravel()) and via == "dn"
    got, via = read("[0:256,0:1024]", "cold")                       # the first: forgotten
    assert np.array_equal(got, arr[:256].ravel()) and via == "sn"
    got, via = read("[10:1000:3,5:1024:7]", "all")                  # half held: the DNs
    assert np.array_equal(got, arr[10:1000:3, 5:1024:7].ravel()) and via == "dn"


def test_the_sn_maps_plain_chunks_for_a_few_elements_the_dns_no_longer_hold(small_caches):
    """Points and columns of an uncompressed dataset go to the DNs while they likely hold
    its chunks or could take them, and are read by the SN through memory maps once they
    cannot (the caches hold 1 MiB each, 2 of the 4 chunks written; the fifth was never
    written: fill)."""
    dom = Domain(small_caches.endpoint)
    arr = np.arange(1280 * 1024, dtype="<i4").reshape(1280, 1024)
    did = dom.dataset(I32, [1280, 1024], creationProperties={
        "fillValue": -5, "layout": {"class": "H5D_CHUNKED", "dims": [256, 1024]}})
    dom.put_bin(did, arr[:1024], select="[0:1024,0:1024]")
    arr[1024:] = -5
    dom.ok("PUT", "/", 204, json={"flush": 1})

    def points(pts, tag):
        raw = dom.ok("POST", f"/datasets/{did}/value", params={"tag": tag},
                     data=np.asarray(pts, "<u8").tobytes(), headers={**BIN, **ACC})
        return np.frombuffer(raw, "<i4"), executor_of(small_caches, tag)

    cold = [[0, 0], [255, 1023], [7, 9], [1100, 3], [1279, 1023]]     # chunks 0 and 4
    got, via = points(cold, "cold")
    assert via == "sn" and list(got) == [arr[i, j] for i, j in cold]
    few = [[300, 5], [500, 6]]              # chunk 1 alone: the DN caches can take it
    got, via = points(few, "few")
    assert via == "dn" and list(got) == [arr[i, j] for i, j in few]
    held = [[800, 1], [1000, 999]]                                      # chunk 3: held
    got, via = points(held, "held")
    assert via == "dn" and list(got) == [arr[i, j] for i, j in held]
    got = dom.get_bin(did, "<i4", select="[0:1280,17:18]", tag="col")   # 2 of 5 held
    assert np.array_equal(got, arr[:, 17]) and executor_of(small_caches, "col") == "sn"


def test_reads_skip_the_dns_only_when_clean(server):
    """A written dataset is read through its DNs until a flush; then (POSIX) the SN reads
    storage itself; a new write sends reads back to the DNs. Values are right throughout."""
    dom = Domain(server.endpoint)
    arr = np.arange(64 * 64, dtype="<i4").reshape(64, 64)
    did = dom.dataset(I32, [64, 64])
    dom.put_bin(did, arr)

    def read(tag):
        got = dom.get_bin(did, "<i4", select="[0:64,0:64]", tag=tag).reshape(64, 64)
        return got, executor_of(server, tag)

    got, via = read("a")
    assert np.array_equal(got, arr) and via == "dn"
    dom.ok("PUT", "/", 204, json={"flush": 1})
    got, via = read("b")
    assert np.array_equal(got, arr) and via == ("sn" if server.backend == "posix" else "dn")
    arr[3, 3] = -7
    dom.put_bin(did, arr[3:4, 3:4], select="[3:4,3:4]")
    got, via = read("c")
    assert np.array_equal(got, arr) and via == "dn"
    for attempt in range(50 if server.backend == "posix" else 1):
        # the DNs write it back; the SN learns it is clean again
        time.sleep(0.2)
        got, via = read(f"d{attempt}")
        assert np.array_equal(got, arr)
        if via == "sn":
            break
    assert via == ("sn" if server.backend == "posix" else "dn")
