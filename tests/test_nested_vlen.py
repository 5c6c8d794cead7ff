"""Values of variable-length types whose base is itself variable-length (vlen of a
compound with vlen fields, vlen of vlen strings, vlen of vlen sequences) over REST on
real SN + DN processes, JSON and binary (REST_API.md §12.3, §12.4), and through h5pyd."""
import struct
import uuid

import pytest
import requests

from conftest import run_h5pyd_client

U1 = ("test_user1", "test")
I32 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}
I64 = {"class": "H5T_INTEGER", "base": "H5T_STD_I64LE"}
VI32 = {"class": "H5T_VLEN", "size": "H5T_VARIABLE", "base": I32}
VSTR = {"class": "H5T_STRING", "length": "H5T_VARIABLE", "charSet": "H5T_CSET_UTF8",
        "strPad": "H5T_STR_NULLTERM"}
INNER = {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": VI32},
                                             {"name": "b", "type": VI32}]}
# h5pyd test_datatype::test_nested_compound_vlen
NESTED = {"class": "H5T_COMPOUND",
          "fields": [{"name": "f1", "type": {"class": "H5T_VLEN", "size": "H5T_VARIABLE",
                                             "base": INNER}},
                     {"name": "f2", "type": I64}]}
NESTED_VALUE = [[[[[1, 2], [6, 7, 8]], [[10, 11, 12, 13], [16, 17, 18, 19, 20]]], 2],
                [[[[1, 2], [6, 7, 8]]], 3]]
# h5pyd test_attribute_data::test_vlen_compound_with_vlen_string
STRS = {"class": "H5T_COMPOUND",
        "fields": [{"name": "f", "type": {"class": "H5T_VLEN", "base": {
            "class": "H5T_COMPOUND", "fields": [{"name": "a", "type": VSTR},
                                                {"name": "b", "type": VSTR}]}}}]}
STRS_VALUE = [[["apples", "bananas"], ["peaches", "oranges"]]]
VLEN_VSTR = {"class": "H5T_VLEN", "base": VSTR}
VLEN_VLEN = {"class": "H5T_VLEN", "base": VI32}


def _i32s(*v):
    return struct.pack(f"<{len(v)}i", *v)


def _item(payload):
    return struct.pack("<i", len(payload)) + payload


def nested_bytes():
    """The 124-byte body h5pyd sends for NESTED_VALUE."""
    in1 = _item(_i32s(1, 2)) + _item(_i32s(6, 7, 8))
    in2 = _item(_i32s(10, 11, 12, 13)) + _item(_i32s(16, 17, 18, 19, 20))
    return (_item(in1 + in2) + struct.pack("<q", 2)) + (_item(in1) + struct.pack("<q", 3))


class Domain:
    def __init__(self, server):
        self.server = server
        self.path = f"/home/test_user1/nv{uuid.uuid4().hex[:10]}.h5"
        rsp = self.req("PUT", "/")
        assert rsp.status_code == 201, rsp.text
        self.root = rsp.json()["root"]

    def req(self, method, path, **kw):
        params = {"domain": self.path, **kw.pop("params", {})}
        return requests.request(method, self.server.endpoint + path, params=params, auth=U1,
                                timeout=30, **kw)

    def ok(self, method, path, status=200, **kw):
        rsp = self.req(method, path, **kw)
        assert rsp.status_code == status, (method, path, rsp.status_code, rsp.text)
        return rsp

    def dataset(self, t, dims):
        body = {"type": t, "shape": dims}
        return self.ok("POST", "/datasets", 201, json=body).json()["id"]


@pytest.fixture
def dom(server):
    return Domain(server)


def test_nested_bytes_is_h5pyd_size():
    assert len(nested_bytes()) == 124


@pytest.mark.parametrize("t, shape, value", [
    (NESTED, {"class": "H5S_SCALAR"}, NESTED_VALUE[0]),
    (STRS, {"class": "H5S_SCALAR"}, STRS_VALUE),
    (NESTED, [2], NESTED_VALUE),
    (VLEN_VSTR, [2], [["a", "bé"], []]),
    (VLEN_VLEN, [3], [[[1], [2, 3]], [[]], []]),
])
def test_attribute_put_get(dom, t, shape, value):
    path = f"/groups/{dom.root}/attributes/attr"
    dom.ok("PUT", path, 201, json={"type": t, "shape": shape, "value": value})
    body = dom.ok("GET", path).json()
    assert body["value"] == value and body["type"]["class"] == t["class"]
    # replace=1 (h5pyd 0.24) and the several-at-once form with obj_ids (h5pyd 1.0)
    dom.ok("PUT", path, 200, params={"replace": 1},
           json={"type": t, "shape": shape, "value": value})
    dom.ok("PUT", f"/groups/{dom.root}/attributes", 201, params={"replace": 1},
           json={"obj_ids": [dom.root], "attributes": {
               "multi": {"type": t, "shape": shape, "value": value}}})
    assert dom.ok("GET", f"/groups/{dom.root}/attributes/multi").json()["value"] == value
    # the value sub-resource: variable-length types answer JSON even to a binary request
    # (§8.9), take JSON and refuse binary (§8.10)
    rsp = dom.ok("GET", path + "/value", headers={"Accept": "application/octet-stream"})
    assert rsp.headers["Content-Type"].startswith("application/json")
    assert rsp.json()["value"] == value
    dom.ok("PUT", path + "/value", json={"value": value})
    assert dom.ok("GET", path + "/value").json()["value"] == value
    rsp = dom.req("PUT", path + "/value", data=b"\0" * 16,
                  headers={"Content-Type": "application/octet-stream"})
    assert rsp.status_code == 400


def test_attribute_bad_values_refused(dom):
    path = f"/groups/{dom.root}/attributes/bad"
    for t, value in ((VLEN_VSTR, "one: \u4e00"), (NESTED, [[[1, 2]], 2]),
                     (VLEN_VLEN, [1, 2])):
        rsp = dom.req("PUT", path, json={"type": t, "shape": {"class": "H5S_SCALAR"},
                                         "value": value})
        assert rsp.status_code == 400, rsp.text
    assert dom.req("GET", "/").status_code == 200


def test_dataset_binary_put_get(dom):
    dset = dom.dataset(NESTED, [2])
    dom.ok("PUT", f"/datasets/{dset}/value", data=nested_bytes(),
           headers={"Content-Type": "application/octet-stream"})
    rsp = dom.ok("GET", f"/datasets/{dset}/value",
                 headers={"Accept": "application/octet-stream"})
    assert rsp.headers["Content-Type"] == "application/octet-stream"
    assert rsp.content == nested_bytes()
    assert dom.ok("GET", f"/datasets/{dset}/value").json()["value"] == NESTED_VALUE
    # one element by selection, binary
    rsp = dom.ok("GET", f"/datasets/{dset}/value", params={"select": "[1:2]"},
                 headers={"Accept": "application/octet-stream"})
    assert rsp.content == nested_bytes()[84:]


def test_dataset_json_put_get(dom):
    dset = dom.dataset(NESTED, [3])
    dom.ok("PUT", f"/datasets/{dset}/value", params={"select": "[0:2]"},
           json={"value": NESTED_VALUE})
    got = dom.ok("GET", f"/datasets/{dset}/value").json()["value"]
    assert got[:2] == NESTED_VALUE and got[2] == [0, 0]
    rsp = dom.ok("GET", f"/datasets/{dset}/value", params={"select": "[0:2]"},
                 headers={"Accept": "application/octet-stream"})
    assert rsp.content == nested_bytes()
    # a point selection
    rsp = dom.ok("POST", f"/datasets/{dset}/value", json={"points": [1, 0]})
    assert rsp.json()["value"] == [NESTED_VALUE[1], NESTED_VALUE[0]]


@pytest.mark.parametrize("t, value", [
    (STRS, [STRS_VALUE, [[["x", ""]]]]),
    (VLEN_VSTR, [["a", "bé"], [], ["c"]]),
    (VLEN_VLEN, [[[1], [2, 3]], [[]], []]),
])
def test_dataset_other_nested_types(dom, t, value):
    dset = dom.dataset(t, [len(value)])
    dom.ok("PUT", f"/datasets/{dset}/value", json={"value": value})
    assert dom.ok("GET", f"/datasets/{dset}/value").json()["value"] == value
    raw = dom.ok("GET", f"/datasets/{dset}/value",
                 headers={"Accept": "application/octet-stream"}).content
    dset2 = dom.dataset(t, [len(value)])
    dom.ok("PUT", f"/datasets/{dset2}/value", data=raw,
           headers={"Content-Type": "application/octet-stream"})
    assert dom.ok("GET", f"/datasets/{dset2}/value").json()["value"] == value


def test_dataset_binary_too_short(dom):
    dset = dom.dataset(NESTED, [2])
    rsp = dom.req("PUT", f"/datasets/{dset}/value", data=nested_bytes()[:100],
                  headers={"Content-Type": "application/octet-stream"})
    assert rsp.status_code == 400
    # an outer length that cuts an inner item short
    bad = bytearray(nested_bytes())
    bad[0:4] = struct.pack("<i", 10)
    rsp = dom.req("PUT", f"/datasets/{dset}/value", data=bytes(bad),
                  headers={"Content-Type": "application/octet-stream"})
    assert rsp.status_code == 400


@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_h5pyd_nested_vlen(server, client):
    run_h5pyd_client(server, client, "h5pyd_nested_vlen.py")
