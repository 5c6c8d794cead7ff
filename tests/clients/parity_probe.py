"""Send one fixed sequence of REST requests to a server and write, per step, the status
and the shape of the JSON answer (keys and value types, not values), so that two
servers' answers can be compared (tests/test_hsds_parity.py: h5cloud vs stock HSDS).

    python parity_probe.py ENDPOINT FOLDER OUT_JSON

FOLDER: a folder test_user1 may create domains in (e.g. /home/test_user1).
"""
import json
import sys
import uuid

import numpy as np
import requests

endpoint, folder, out_path = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
AUTH = ("test_user1", "test")
PARAMS = {"domain": f"{folder}/parity{uuid.uuid4().hex[:8]}.h5"}
I32 = "H5T_STD_I32LE"
A1 = {"type": I32, "shape": [2], "value": [1, 2]}
VSTR = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "strPad": "H5T_STR_NULLTERM",
        "length": "H5T_VARIABLE"}
steps = []


def shape_of(x, depth=0):
    """Keys (an object id as "{id}") and value types, three levels deep; lists by their
    first item."""
    if isinstance(x, dict):
        if depth >= 3:
            return "{}"
        return {("{id}" if k[:2] in ("g-", "d-", "t-") and len(k) == 38 else k):
                shape_of(v, depth + 1) for k, v in sorted(x.items())}
    if isinstance(x, list):
        return [shape_of(x[0], depth + 1)] if x else []
    return type(x).__name__


def req(step, method, path, body=None, params=None, raw=None, headers=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    rsp = requests.request(method, endpoint + path, params={**PARAMS, **(params or {})},
                           auth=AUTH, data=data, headers=headers or {}, timeout=60)
    entry = {"step": step, "status": rsp.status_code}
    try:
        answer = rsp.json()
    except ValueError:
        answer = None
    if rsp.status_code < 300 and isinstance(answer, dict):
        entry["json"] = shape_of({k: v for k, v in answer.items() if k != "hrefs"})
    steps.append(entry)
    return answer if isinstance(answer, dict) else {}


root = req("domain", "PUT", "/")["root"]
g0 = req("group", "POST", "/groups", {"link": {"id": root, "name": "g0"}})["id"]
g1 = req("group with contents", "POST", "/groups", {
    "link": {"id": root, "name": "g1"}, "attributes": {"a1": A1, "a2": {"type": VSTR,
                                                                         "value": "hi"}},
    "links": {"hard": {"id": g0}, "soft": {"h5path": "/g0"},
              "ext": {"h5path": "/x", "h5domain": f"{folder}/o.h5"},
              "ext2": {"h5path": "/y", "file": f"{folder}/o2.h5"}}})["id"]
req("get group with contents", "GET", f"/groups/{g1}",
    params={"include_links": 1, "include_attrs": 1})
for title in ("hard", "soft", "ext", "ext2"):
    req(f"get link {title}", "GET", f"/groups/{g1}/links/{title}")
req("list links", "GET", f"/groups/{g1}/links")
req("post link titles", "POST", f"/groups/{g1}/links", {"titles": ["ext", "soft", "hard"]})
req("dataset with attributes", "POST", "/datasets", {
    "type": I32, "shape": [4], "link": {"id": root, "name": "d1"}, "attributes": {"a1": A1}})
req("datatype with attributes", "POST", "/datatypes", {
    "type": I32, "link": {"id": root, "name": "t1"}, "attributes": {"a1": A1}})
req("many groups", "POST", "/groups", [
    {"link": {"id": root, "name": "m1"}},
    {"link": {"id": root, "name": "m2"}, "attributes": {"a1": A1}, "links": {"s": {"h5path": "/"}}},
    {}])
req("many datasets", "POST", "/datasets", [
    {"type": I32, "shape": [3], "link": {"id": root, "name": "md1"}},
    {"type": "H5T_IEEE_F32LE", "shape": [2, 2], "attributes": {"a1": A1}}])
req("many datatypes", "POST", "/datatypes", [
    {"type": I32, "link": {"id": root, "name": "mt1"}}, {"type": "H5T_STD_I8LE"}])
req("root after creations", "GET", f"/groups/{root}", params={"include_links": 1})
req("group malformed id", "POST", "/groups", {"id": "g-123"})
req("group link without name", "POST", "/groups", {"link": {"id": root}})
# links of every class, paged
g2 = req("group for links", "POST", "/groups", {"link": {"id": root, "name": "g2"}})["id"]
links = {f"l{i:02d}": ({"id": g0}, {"h5path": f"/p{i}"},
                       {"h5path": f"/p{i}", "h5domain": f"{folder}/f{i}.h5"})[i % 3]
         for i in range(12)}
req("put many links", "PUT", f"/groups/{g2}/links", {"links": links})
req("put stamped links", "PUT", f"/groups/{g2}/links",
    {"links": {f"t{i}": {"id": g0, "created": 1700000000.0 + i} for i in range(3)}})
req("list every link", "GET", f"/groups/{g2}/links")
req("list a page", "GET", f"/groups/{g2}/links", params={"Limit": 5, "Marker": "l04"})
req("links of two groups", "POST", f"/groups/{root}/links", {"grp_ids": [g2, g1]})
req("put external link (h5domain)", "PUT", f"/groups/{g2}/links/e1",
    {"h5path": "/a", "h5domain": f"{folder}/x.h5"})
req("put external link (file)", "PUT", f"/groups/{g2}/links/e2",
    {"h5path": "/a", "file": f"{folder}/x.h5"})
req("get external link e1", "GET", f"/groups/{g2}/links/e1")
req("get external link e2", "GET", f"/groups/{g2}/links/e2")
# datasets
req("1-D dataset, large, no layout", "POST", "/datasets", {"type": I32, "shape": [100000000]})
unlimited = req("1-D unlimited (0)", "POST", "/datasets",
                {"type": I32, "shape": [10], "maxdims": [0]})
req("1-D unlimited (H5S_UNLIMITED)", "POST", "/datasets",
    {"type": I32, "shape": [10], "maxdims": ["H5S_UNLIMITED"]})
req("get unlimited dataset", "GET", f"/datasets/{unlimited.get('id')}")
req("2-D partly unlimited", "POST", "/datasets",
    {"type": "H5T_IEEE_F64LE", "shape": [10, 20], "maxdims": [0, 20]})
req("layout of the wrong rank", "POST", "/datasets", {
    "type": I32, "shape": [10, 10],
    "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [5]}}})
req("layout larger than the shape", "POST", "/datasets", {
    "type": I32, "shape": [10, 10],
    "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [50, 5]}}})
for cls in ("H5D_CONTIGUOUS", "H5D_COMPACT"):
    req(f"resizable {cls}", "POST", "/datasets", {
        "type": I32, "shape": [10], "maxdims": [20],
        "creationProperties": {"layout": {"class": cls}}})
req("resizable, no layout", "POST", "/datasets", {"type": I32, "shape": [10], "maxdims": [20]})
scalar = req("scalar dataset", "POST", "/datasets", {"type": I32})
req("get scalar dataset", "GET", f"/datasets/{scalar.get('id')}")
nan = req("NaN fill", "POST", "/datasets", {
    "type": "H5T_IEEE_F32LE", "shape": [4], "creationProperties": {"fillValue": "nan"}})
req("get NaN fill dataset", "GET", f"/datasets/{nan.get('id')}")
req("read NaN fill", "GET", f"/datasets/{nan.get('id')}/value")
ini = req("arange initializer", "POST", "/datasets", {
    "type": "H5T_STD_I64LE", "shape": [40], "creationProperties": {
        "layout": {"class": "H5D_CHUNKED", "dims": [16]},
        "initializer": ["arange", "--start=10", "--step=2"]}})
req("read arange", "GET", f"/datasets/{ini.get('id')}/value")
ctype = {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": I32},
                                             {"name": "b", "type": "H5T_IEEE_F64LE"}]}
cmp = req("compound dataset", "POST", "/datasets", {"type": ctype, "shape": [5]})["id"]
req("write compound", "PUT", f"/datasets/{cmp}/value",
    {"value": [[i, i / 2] for i in range(5)]})
req("compound points (JSON)", "POST", f"/datasets/{cmp}/value", {"points": [1, 3]})
req("compound points (binary)", "POST", f"/datasets/{cmp}/value",
    raw=np.array([1, 3], "<u8").tobytes(),
    headers={"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"})
json.dump(steps, open(out_path, "w"), indent=1)
print("all ok")
