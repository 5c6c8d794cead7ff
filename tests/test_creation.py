"""Object creation as HSDS 1.0.2 does it, over plain HTTP on real SN + DN processes
(POSIX and S3): contents given at creation, lists of objects, validation, external
link keys, link paging, dataset layouts and maxdims, NaN fill, the arange
initializer, and point selections on compound datasets."""
import json
import math

import numpy as np
import pytest

from test_metadata import Domain

I32 = "H5T_STD_I32LE"
A1 = {"type": I32, "shape": [2], "value": [1, 2]}
VSTR = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "strPad": "H5T_STR_NULLTERM",
        "length": "H5T_VARIABLE"}
OTHER = "/home/test_user1/other.h5"
BINARY = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


@pytest.fixture
def dom(server):
    return Domain(server)


def post(dom, collection, body, status=201):
    return dom.ok("POST", f"/{collection}", status, data=json.dumps(body))


# ---- contents at creation ---------------------------------------------------------

def test_group_made_with_attributes_and_links(dom):
    g0 = dom.group(name="g0")
    made = post(dom, "groups", {
        "link": {"id": dom.root, "name": "g1"},
        "attributes": {"a1": A1, "a2": {"type": VSTR, "value": "hi"}},
        "links": {"hard": {"id": g0}, "soft": {"h5path": "/g0"},
                  "ext": {"h5path": "/x", "h5domain": OTHER},
                  "ext2": {"h5path": "/y", "file": OTHER}}})
    assert made["attributeCount"] == 2 and made["linkCount"] == 4
    doc = dom.ok("GET", f"/groups/{made['id']}",
                 params={"include_links": 1, "include_attrs": 1})
    assert doc["linkCount"] == 4 and doc["attributeCount"] == 2
    assert doc["attributes"]["a1"]["value"] == [1, 2]
    assert doc["attributes"]["a2"]["value"] == "hi" and "created" in doc["attributes"]["a2"]
    assert doc["links"]["hard"]["id"] == g0 and doc["links"]["soft"]["h5path"] == "/g0"
    for title, path in (("ext", "/x"), ("ext2", "/y")):
        link = dom.ok("GET", f"/groups/{made['id']}/links/{title}")["link"]
        assert link == {"title": title, "class": "H5L_TYPE_EXTERNAL", "h5path": path,
                        "file": OTHER, "h5domain": OTHER}
    assert dom.ok("GET", f"/groups/{made['id']}/attributes/a1")["value"] == [1, 2]
    # the new group is reachable and its hard link resolves
    found = dom.ok("GET", "/", params={"h5path": "/g1/hard"})
    assert found["id"] == g0


def test_dataset_and_datatype_made_with_attributes(dom):
    d = post(dom, "datasets", {"type": I32, "shape": [4], "attributes": {"a1": A1},
                               "link": {"id": dom.root, "name": "d"}})
    assert d["attributeCount"] == 1 and d["creationProperties"]["layout"]
    t = post(dom, "datatypes", {"type": I32, "attributes": {"a1": A1, "b": A1},
                                "link": {"id": dom.root, "name": "t"}})
    assert t["attributeCount"] == 2
    assert dom.ok("GET", f"/datasets/{d['id']}/attributes/a1")["value"] == [1, 2]
    names = [a["name"] for a in dom.ok("GET", f"/datatypes/{t['id']}/attributes")["attributes"]]
    assert names == ["a1", "b"]
    assert post(dom, "datasets", {"type": I32, "shape": [4], "links": {}}, 400)


def test_bad_contents_store_nothing(dom):
    g0 = dom.group(name="g0")
    missing = g0[:-6] + ("abcdef" if not g0.endswith("abcdef") else "fedcba")
    before = dom.ok("GET", f"/groups/{dom.root}")["linkCount"]
    for body, status in (
            ({"link": {"id": dom.root, "name": "x"}, "links": {"h": {"id": missing}}}, 404),
            ({"link": {"id": dom.root, "name": "x"}, "attributes": {"a": {"shape": [1]}}}, 400),
            ({"link": {"id": dom.root, "name": "x"},
              "attributes": {"a": {"type": I32, "value": "nan"}}}, 400)):
        rsp = dom.req("POST", "/groups", data=json.dumps(body))
        assert rsp.status_code == status, (body, rsp.text)
        assert "message" in rsp.json() or "error" in rsp.json()
    assert dom.ok("GET", f"/groups/{dom.root}")["linkCount"] == before


def test_many_objects_in_one_post(dom):
    made = post(dom, "groups", [
        {"link": {"id": dom.root, "name": "m1"}},
        {"link": {"id": dom.root, "name": "m2"}, "attributes": {"a1": A1},
         "links": {"s": {"h5path": "/"}}},
        {}])["objects"]
    assert [(m["linkCount"], m["attributeCount"]) for m in made] == [(0, 0), (1, 1), (0, 0)]
    dsets = post(dom, "datasets", [
        {"type": I32, "shape": [3], "link": {"id": dom.root, "name": "md1"}, "value": [1, 2, 3]},
        {"type": "H5T_IEEE_F32LE", "shape": [2, 2], "attributes": {"a1": A1}}])["objects"]
    assert dsets[1]["attributeCount"] == 1
    assert all("creationProperties" in d for d in dsets)
    post(dom, "datatypes", [{"type": I32, "link": {"id": dom.root, "name": "mt1"}},
                            {"type": "H5T_STD_I8LE"}])
    root = dom.ok("GET", f"/groups/{dom.root}", params={"include_links": 1})
    assert sorted(root["links"]) == ["m1", "m2", "md1", "mt1"] and root["linkCount"] == 4
    assert dom.ok("GET", f"/datasets/{dsets[0]['id']}/value")["value"] == [1, 2, 3]
    # h5pyd 1.0's form: client ids with timestamps, linked afterwards
    gid = made[0]["id"][:-6] + "abcdef"
    got = post(dom, "groups", [{"id": gid, "creationProperties": {}, "created": 1.0,
                                "lastModified": 1.0}])["objects"]
    assert got[0]["id"] == gid


# ---- group validation ----------------------------------------------------------------

def test_group_post_validation(dom):
    g0 = dom.group(name="g0")
    for body in ({"bogus": 1}, {"type": I32}, {"link": "x"}, {"link": {"id": dom.root}},
                 {"link": {"id": dom.root, "name": "a/b"}}, {"id": "g-123"}, {"id": 5},
                 {"attributes": [1]}, {"links": {"a": 5}}, {"links": [1]},
                 {"creationProperties": 3}, [1], {"h5path": "/a", "link": {"id": dom.root,
                                                                            "name": "b"}}):
        rsp = dom.req("POST", "/groups", data=json.dumps(body))
        assert rsp.status_code == 400, (body, rsp.status_code, rsp.text)
        assert rsp.json()["status"] == 400
    assert dom.req("POST", "/groups", data=json.dumps({"id": g0})).status_code == 409
    assert dom.ok("GET", f"/groups/{dom.root}")["linkCount"] == 1


# ---- links: external keys, listings of every class -------------------------------------

def test_link_listing_of_every_class(dom):
    g0 = dom.group(name="g0")
    g2 = dom.group(name="g2")
    links = {}
    for i in range(12):
        links[f"l{i:02d}"] = ({"id": g0}, {"h5path": f"/p{i}"},
                              {"h5path": f"/p{i}", "h5domain": f"/home/test_user1/f{i}.h5"})[i % 3]
    dom.ok("PUT", f"/groups/{g2}/links", 201, data=json.dumps({"links": links}))
    stamped = {f"t{i}": {"id": g0, "created": 1700000000.0 + i} for i in range(3)}
    dom.ok("PUT", f"/groups/{g2}/links", 201, data=json.dumps({"links": stamped}))
    every = sorted(list(links) + list(stamped))
    listed = dom.ok("GET", f"/groups/{g2}/links")["links"]
    assert [l["title"] for l in listed] == every
    for link in listed:
        if link["class"] == "H5L_TYPE_EXTERNAL":
            assert link["file"] == link["h5domain"] == links[link["title"]]["h5domain"]
    paged, marker = [], None
    while True:
        params = {"Limit": 4, **({"Marker": marker} if marker else {})}
        page = dom.ok("GET", f"/groups/{g2}/links", params=params)["links"]
        if not page:
            break
        paged += [l["title"] for l in page]
        marker = page[-1]["title"]
    assert paged == every
    ordered = dom.ok("GET", f"/groups/{g2}/links", params={"CreateOrder": 1})["links"]
    assert len(ordered) == 15
    fetched = dom.ok("POST", f"/groups/{g2}/links", data=json.dumps({"titles": every}))["links"]
    assert [l["title"] for l in fetched] == every
    assert all("file" in l for l in fetched if l["class"] == "H5L_TYPE_EXTERNAL")
    many = dom.ok("POST", f"/groups/{dom.root}/links",
                  data=json.dumps({"grp_ids": [g2, dom.root]}))["links"]
    assert len(many[g2]) == 15 and len(many[dom.root]) == 2
    assert all(l["file"] == l["h5domain"] for l in many[g2] if l["class"] == "H5L_TYPE_EXTERNAL")


# ---- datasets: layouts, maxdims, fill, initializer ------------------------------------------

def test_dataset_layouts_and_maxdims(dom):
    big = post(dom, "datasets", {"type": I32, "shape": [100_000_000]})
    assert big["creationProperties"]["layout"]["class"] == "H5D_CHUNKED"
    for maxdims in ([0], ["H5S_UNLIMITED"]):
        made = post(dom, "datasets", {"type": I32, "shape": [10], "maxdims": maxdims})
        assert made["shape"]["maxdims"] == ["H5S_UNLIMITED"]
        assert made["creationProperties"]["layout"]["class"] == "H5D_CHUNKED"
        doc = dom.ok("GET", f"/datasets/{made['id']}")
        assert doc["shape"] == {"class": "H5S_SIMPLE", "dims": [10], "maxdims": ["H5S_UNLIMITED"]}
        dom.ok("PUT", f"/datasets/{made['id']}/shape", 201, data=json.dumps({"shape": [25]}))
        assert dom.ok("GET", f"/datasets/{made['id']}/shape")["shape"]["dims"] == [25]
    two = post(dom, "datasets", {"type": I32, "shape": [10, 20], "maxdims": [0, 20]})
    assert two["shape"]["maxdims"] == ["H5S_UNLIMITED", 20]
    resizable = post(dom, "datasets", {"type": I32, "shape": [10], "maxdims": [20]})
    assert resizable["creationProperties"]["layout"] == {"class": "H5D_CHUNKED", "dims": [20]}
    for cls in ("H5D_CONTIGUOUS", "H5D_COMPACT"):
        for maxdims in ([20], [10]):
            post(dom, "datasets", {"type": I32, "shape": [10], "maxdims": maxdims,
                                   "creationProperties": {"layout": {"class": cls}}}, 400)
    for dims in ([5], [50, 5], [0, 5]):
        post(dom, "datasets", {"type": I32, "shape": [10, 10], "creationProperties": {
            "layout": {"class": "H5D_CHUNKED", "dims": dims}}}, 400)
    huge_items = post(dom, "datasets", {"shape": [3], "type": {   # h5py's auto-chunk "abuse"
        "class": "H5T_STRING", "charSet": "H5T_CSET_ASCII", "strPad": "H5T_STR_NULLPAD",
        "length": 100_000_000}})
    assert huge_items["creationProperties"]["layout"]["dims"] == [1]
    post(dom, "datasets", {"shape": [3], "type": {
        "class": "H5T_STRING", "charSet": "H5T_CSET_ASCII", "strPad": "H5T_STR_NULLPAD",
        "length": 10 ** 12}}, 400)
    scalar = post(dom, "datasets", {"type": I32})
    doc = dom.ok("GET", f"/datasets/{scalar['id']}")
    assert {"id", "root", "type", "shape", "creationProperties", "attributeCount", "created",
            "lastModified", "domain", "hrefs"} <= set(doc)
    assert doc["creationProperties"]["layout"] == {"class": "H5D_CONTIGUOUS"}


def test_nan_fill_value(dom):
    for fill in ("nan", "NaN"):
        made = post(dom, "datasets", {"type": "H5T_IEEE_F32LE", "shape": [6],
                                      "creationProperties": {"fillValue": fill}})
        assert made["creationProperties"]["fillValue"] == fill
        doc = dom.ok("GET", f"/datasets/{made['id']}")
        assert doc["creationProperties"]["fillValue"] == fill
        dom.ok("PUT", f"/datasets/{made['id']}/value", params={"select": "[1:2]"},
               data=json.dumps({"value": [5.0]}))
        values = dom.ok("GET", f"/datasets/{made['id']}/value")["value"]
        assert values[1] == 5.0 and all(math.isnan(v) for i, v in enumerate(values) if i != 1)
        raw = dom.req("GET", f"/datasets/{made['id']}/value", headers=BINARY).content
        arr = np.frombuffer(raw, "<f4")
        assert arr[1] == 5.0 and np.isnan(np.delete(arr, 1)).all()


def test_arange_initializer(dom):
    made = post(dom, "datasets", {"type": "H5T_STD_I64LE", "shape": [40], "creationProperties": {
        "layout": {"class": "H5D_CHUNKED", "dims": [16]},
        "initializer": ["arange", "--start=10", "--step=2"]}})
    did = made["id"]
    assert made["creationProperties"]["initializer"] == ["arange", "--start=10", "--step=2"]
    expected = 10 + 2 * np.arange(40)
    assert dom.ok("GET", f"/datasets/{did}/value")["value"] == expected.tolist()
    raw = dom.req("GET", f"/datasets/{did}/value", headers=BINARY).content
    assert np.array_equal(np.frombuffer(raw, "<i8"), expected)
    # a write into an initialized chunk keeps the chunk's other values
    dom.ok("PUT", f"/datasets/{did}/value", params={"select": "[3:5]"},
           data=json.dumps({"value": [-1, -1]}))
    expected[3:5] = -1
    assert dom.ok("GET", f"/datasets/{did}/value")["value"] == expected.tolist()
    pts = dom.ok("POST", f"/datasets/{did}/value", data=json.dumps({"points": [0, 4, 39]}))
    assert pts["value"] == [10, -1, 88]
    floats = post(dom, "datasets", {"type": "H5T_IEEE_F64LE", "shape": [5], "creationProperties": {
        "initializer": ["arange", "--start=0.5", "--step=0.25"]}})
    assert dom.ok("GET", f"/datasets/{floats['id']}/value")["value"] == [0.5, 0.75, 1.0, 1.25, 1.5]
    for props, shape in (({"initializer": ["arange"]}, [4, 4]),
                         ({"initializer": ["chunklocator", "--h5path=/x"]}, [4]),
                         ({"initializer": ["arange", "--start=x"]}, [4]),
                         ({"initializer": ["arange", "--stop=4"]}, [4]),
                         ({"initializer": 5}, [4])):
        post(dom, "datasets", {"type": I32, "shape": shape, "creationProperties": props}, 400)


# ---- point selections on compound datasets ------------------------------------------------

def test_compound_points(dom):
    ctype = {"class": "H5T_COMPOUND", "fields": [
        {"name": "a", "type": I32}, {"name": "s", "type": VSTR},
        {"name": "v", "type": {"class": "H5T_ARRAY", "base": "H5T_IEEE_F32LE", "dims": [2]}}]}
    fixed = {"class": "H5T_COMPOUND", "fields": [{"name": "a", "type": I32},
                                                 {"name": "b", "type": "H5T_IEEE_F64LE"}]}
    rows = [[i, f"s{i}", [i, i + 0.5]] for i in range(6)]
    for shape, points in (([6], [1, 4]), ([2, 3], [[0, 1], [1, 2]])):
        value = rows if shape == [6] else [rows[:3], rows[3:]]
        did = post(dom, "datasets", {"type": ctype, "shape": shape})["id"]
        dom.ok("PUT", f"/datasets/{did}/value", data=json.dumps({"value": value}))
        got = dom.ok("POST", f"/datasets/{did}/value", data=json.dumps({"points": points}))
        assert got["value"] == [rows[1], rows[4]] if shape == [6] else [rows[1], rows[5]]
        only = dom.ok("POST", f"/datasets/{did}/value", params={"fields": "a"},
                      data=json.dumps({"points": points}))
        assert only["value"] == ([[1], [4]] if shape == [6] else [[1], [5]])
        dom.ok("PUT", f"/datasets/{did}/value", data=json.dumps(
            {"points": points, "value": [[7, "x", [0, 0]], [8, "y", [1, 1]]]}))
        got = dom.ok("POST", f"/datasets/{did}/value", data=json.dumps({"points": points}))
        assert got["value"] == [[7, "x", [0.0, 0.0]], [8, "y", [1.0, 1.0]]]
        # binary both ways on a fixed-size compound
        fid = post(dom, "datasets", {"type": fixed, "shape": shape})["id"]
        dt = np.dtype([("a", "<i4"), ("b", "<f8")])
        arr = np.array([(i, i / 2) for i in range(6)], dt).reshape(shape)
        dom.req("PUT", f"/datasets/{fid}/value", data=arr.tobytes(), headers=BINARY)
        coords = np.array(points, "<u8").tobytes()
        rsp = dom.req("POST", f"/datasets/{fid}/value", data=coords, headers=BINARY)
        assert rsp.status_code == 200
        want = arr.reshape(-1)[[1, 4]] if shape == [6] else arr.reshape(-1)[[1, 5]]
        assert np.array_equal(np.frombuffer(rsp.content, dt), want)


def test_region_reference_attribute_as_object(dom):
    """h5pyd 1.0's dset.query() stores a region reference as an object: kept verbatim."""
    did = post(dom, "datasets", {"type": I32, "shape": [4, 4]})["id"]
    ref = {"id": did[2:], "select_type": "H5S_SEL_POINTS", "selection": [[1, 1], [2, 3]]}
    body = {"obj_ids": {did: {"attributes": {"regref": {
        "shape": {"class": "H5S_SCALAR"},
        "type": {"class": "H5T_REFERENCE", "base": "H5T_STD_REF_DSETREG"}, "value": ref}}}}}
    dom.ok("PUT", f"/datasets/{did}/attributes", 201, data=json.dumps(body))
    assert dom.ok("GET", f"/datasets/{did}/attributes/regref")["value"] == ref
