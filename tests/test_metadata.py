"""Groups, links, attributes and committed datatypes over plain HTTP, on real SN + DN
processes (POSIX and S3), plus the h5pyd metadata scenario with both clients."""
import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from conftest import run_h5pyd_client

U1 = ("test_user1", "test")
U2 = ("test_user2", "test")
I32 = {"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}


class Domain:
    """A fresh domain of test_user1 and short request helpers bound to it."""

    def __init__(self, server):
        self.server = server
        self.path = f"/home/test_user1/m{uuid.uuid4().hex[:10]}.h5"
        rsp = self.req("PUT", "/")
        assert rsp.status_code == 201, rsp.text
        self.root = rsp.json()["root"]

    def req(self, method, path, auth=U1, **kw):
        params = {"domain": self.path, **kw.pop("params", {})}
        return requests.request(method, self.server.endpoint + path, params=params, auth=auth,
                                timeout=30, **kw)

    def ok(self, method, path, status=200, **kw):
        rsp = self.req(method, path, **kw)
        assert rsp.status_code == status, (method, path, rsp.status_code, rsp.text)
        return rsp.json() if rsp.content else None

    def group(self, parent=None, name=None, **body):
        if name is not None:
            body["link"] = {"id": parent or self.root, "name": name}
        return self.ok("POST", "/groups", 201, json=body or None)["id"]


@pytest.fixture
def dom(server):
    return Domain(server)


# ---- groups -------------------------------------------------------------------

def test_group_create_get_delete(dom):
    anon = dom.ok("POST", "/groups", 201, data="null")
    assert len(anon["id"]) == 38 and anon["linkCount"] == 0 and anon["attributeCount"] == 0
    g1 = dom.group(name="g1", creationProperties={"CreateOrder": True})
    body = dom.ok("GET", f"/groups/{g1}")
    assert body["creationProperties"] == {"CreateOrder": True}
    assert body["domain"] == dom.path and len(body["hrefs"]) == 5
    root = dom.ok("GET", f"/groups/{dom.root}", params={"include_links": 1})
    assert root["linkCount"] == 1 and root["links"]["g1"]["id"] == g1
    assert root["links"]["g1"]["class"] == "H5L_TYPE_HARD"
    assert "links" not in dom.ok("GET", f"/groups/{dom.root}")
    assert dom.ok("GET", f"/groups/{g1}", params={"getalias": 1})["alias"] == ["/g1"]
    assert dom.ok("GET", f"/groups/{anon['id']}", params={"getalias": 1})["alias"] == []
    assert dom.ok("GET", f"/groups/{dom.root}", params={"getalias": 1})["alias"] == ["/"]
    dom.ok("DELETE", f"/groups/{g1}")
    assert dom.req("GET", f"/groups/{g1}").status_code == 410
    assert dom.req("DELETE", f"/groups/{dom.root}").status_code == 403
    assert dom.req("GET", f"/groups/{g1}", auth=U2).status_code == 403
    assert dom.req("POST", "/groups", auth=U2).status_code == 403
    assert dom.req("POST", "/groups", auth=None).status_code == 401


def test_group_by_path_and_implicit(dom):
    made = dom.ok("POST", "/groups", 201, json={"h5path": "/a"})
    assert dom.req("POST", "/groups", json={"h5path": "/a"}).status_code == 409
    assert dom.req("POST", "/groups", json={"h5path": "/x/y/z"}).status_code == 404
    deep = dom.ok("POST", "/groups", 201, json={"h5path": "/x/y/z"}, params={"implicit": 1})
    found = dom.ok("GET", "/groups/", params={"h5path": "/x/y/z"})
    assert found["id"] == deep["id"]
    assert dom.ok("GET", "/groups/", params={"h5path": "/a/"})["id"] == made["id"]
    rel = dom.ok("POST", "/groups", 201, json={"h5path": "b", "parent_id": made["id"]})
    assert dom.ok("GET", "/groups/", params={"h5path": "b", "grpid": made["id"]})["id"] == rel["id"]
    assert dom.req("GET", "/groups/", params={"h5path": "b"}).status_code == 400
    assert dom.req("GET", "/groups/", params={"h5path": "/nope"}).status_code == 404
    assert dom.req("POST", "/groups", json={"h5path": "/q", "link": {
        "id": dom.root, "name": "q"}}).status_code == 400
    assert dom.req("POST", "/groups", json={"link": {
        "id": dom.root, "name": "a/b"}}).status_code == 400
    assert sorted(dom.ok("GET", "/groups")["groups"]) == sorted(
        [made["id"], rel["id"], deep["id"]] + [
            dom.ok("GET", "/groups/", params={"h5path": p})["id"] for p in ("/x", "/x/y")])


def test_h5pyd_style_bulk_creation(dom):
    """h5pyd 1.0 posts lists of objects with its own ids, then links them in bulk."""
    import server.core.ids as ids
    a, b = ids.new_object_id("g", dom.root), ids.new_object_id("g", dom.root)
    dom.ok("POST", "/groups", 201, json=[{"id": a, "creationProperties": {}}, {"id": b}])
    assert dom.req("POST", "/groups", json=[{"id": a}]).status_code == 409
    other_root = ids.new_root_id()
    assert dom.req("POST", "/groups", json=[{"id": ids.new_object_id(
        "g", other_root)}]).status_code == 400
    now = __import__("time").time()
    body = {"grp_ids": {dom.root: {"links": {"a": {"class": "H5L_TYPE_HARD", "id": a,
                                                    "created": now}}},
                        a: {"links": {"b": {"class": "H5L_TYPE_HARD", "id": b},
                                      "s": {"class": "H5L_TYPE_SOFT", "h5path": "/a"}}}}}
    dom.ok("PUT", f"/groups/{dom.root}/links", 201, json=body)
    dom.ok("PUT", f"/groups/{dom.root}/links", 200, json=body)
    link = dom.ok("GET", f"/groups/{dom.root}/links/a")
    assert link["created"] == now
    attrs = {"obj_ids": {a: {"attributes": {"n": {"type": I32, "shape": {"class": "H5S_SCALAR"},
                                                  "value": 5, "created": now}}},
                         b: {"attributes": {"m": {"type": "H5T_IEEE_F64LE", "shape": [2],
                                                  "value": [1.5, 2.5]}}}}}
    dom.ok("PUT", f"/groups/{dom.root}/attributes", 201, json=attrs)
    assert dom.ok("GET", f"/groups/{b}/attributes/m")["value"] == [1.5, 2.5]
    objs = dom.ok("GET", "/", params={"getobjs": "T", "include_attrs": "T"})["domain_objs"]
    assert set(objs) == {dom.root, a, b}
    assert objs[a]["attributes"]["n"]["value"] == 5 and set(objs[a]["links"]) == {"b", "s"}
    assert objs[a]["links"]["s"] == {"class": "H5L_TYPE_SOFT", "h5path": "/a",
                                     "created": objs[a]["links"]["s"]["created"]}


# ---- links --------------------------------------------------------------------

def test_link_kinds_and_conflicts(dom):
    g = dom.group(name="g")
    dom.ok("PUT", f"/groups/{dom.root}/links/hard", 201, json={"id": g})
    dom.ok("PUT", f"/groups/{dom.root}/links/hard", 200, json={"id": g})
    assert dom.req("PUT", f"/groups/{dom.root}/links/hard",
                   json={"h5path": "/g"}).status_code == 409
    dom.ok("PUT", f"/groups/{dom.root}/links/soft", 201, json={"h5path": "/g"})
    dom.ok("PUT", f"/groups/{dom.root}/links/ext", 201,
           json={"h5path": "/x", "h5domain": "/home/test_user1/other.h5"})
    hard = dom.ok("GET", f"/groups/{dom.root}/links/hard")
    assert hard["link"] == {"title": "hard", "class": "H5L_TYPE_HARD", "id": g,
                            "collection": "groups"}
    assert hard["created"] == hard["lastModified"] and len(hard["hrefs"]) == 4
    soft = dom.ok("GET", f"/groups/{dom.root}/links/soft")
    assert soft["link"] == {"title": "soft", "class": "H5L_TYPE_SOFT", "h5path": "/g"}
    assert len(soft["hrefs"]) == 3
    ext = dom.ok("GET", f"/groups/{dom.root}/links/ext")["link"]
    assert ext == {"title": "ext", "class": "H5L_TYPE_EXTERNAL", "h5path": "/x",
                   "file": "/home/test_user1/other.h5",
                   "h5domain": "/home/test_user1/other.h5"}
    bad = [{"id": g, "h5path": "/g"}, {}, {"id": "foobar"}, {"id": g, "class": "H5L_TYPE_SOFT"},
           "x"]
    for body in bad:
        assert dom.req("PUT", f"/groups/{dom.root}/links/b", json=body).status_code == 400
    import server.core.ids as ids
    missing = ids.new_object_id("g", dom.root)
    assert dom.req("PUT", f"/groups/{dom.root}/links/m", json={"id": missing}).status_code == 404
    other = Domain(dom.server)
    assert dom.req("PUT", f"/groups/{dom.root}/links/o",
                   json={"id": other.root}).status_code == 400
    assert dom.req("PUT", f"/groups/{dom.root}/links/", json={"id": g}).status_code == 404
    assert dom.req("PUT", f"/groups/{dom.root}/links/one/two",
                   json={"id": g}).status_code == 404
    assert dom.req("GET", f"/groups/{dom.root}/links/nope").status_code == 404
    dom.ok("DELETE", f"/groups/{dom.root}/links/soft")
    assert dom.req("GET", f"/groups/{dom.root}/links/soft").status_code == 410
    dom.ok("DELETE", f"/groups/{dom.root}/links/soft")           # tombstoned: a no-op
    assert dom.req("DELETE", f"/groups/{dom.root}/links/never").status_code == 404
    dom.ok("PUT", f"/groups/{dom.root}/links/soft", 201, json={"h5path": "/g"})
    assert dom.ok("GET", f"/groups/{g}")["id"] == g               # target survives
    assert dom.req("DELETE", f"/groups/{dom.root}/links/hard", auth=U2).status_code == 403


NAMES = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
         "tenth", "eleventh", "twelfth"]


def test_link_listing(dom):
    for name in NAMES:
        dom.ok("PUT", f"/groups/{dom.root}/links/{name}", 201, json={"h5path": f"/{name}"})
    url = f"/groups/{dom.root}/links"
    links = dom.ok("GET", url)["links"]
    assert [l["title"] for l in links] == sorted(NAMES)
    created = [l["created"] for l in dom.ok("GET", url, params={"CreateOrder": 1})["links"]]
    assert created == sorted(created) and len(set(created)) == 12
    assert [l["title"] for l in dom.ok("GET", url, params={"CreateOrder": 1})["links"]] == NAMES
    assert len(dom.ok("GET", url, params={"Limit": 4})["links"]) == 4
    lex = dom.ok("GET", url, params={"Marker": "seventh"})["links"]
    assert len(lex) == 4 and lex[-1]["title"] == "twelfth"
    co = dom.ok("GET", url, params={"Marker": "seventh", "CreateOrder": 1})["links"]
    assert len(co) == 5 and co[-1]["title"] == "twelfth"
    assert dom.ok("GET", url, params={"Marker": "seventh", "Limit": 3})["links"][-1]["title"] \
        == "third"
    assert dom.ok("GET", url, params={"Marker": "seventh", "Limit": 3, "CreateOrder": 1}
                  )["links"][-1]["title"] == "tenth"
    assert [l["title"] for l in dom.ok("GET", url, params={"pattern": "*th"})["links"]] == \
        sorted(n for n in NAMES if n.endswith("th"))
    assert dom.req("GET", url, params={"Marker": "nope"}).status_code == 404
    assert len(dom.ok("GET", url)["hrefs"]) == 3
    got = dom.ok("POST", url, json={"titles": ["third", "first"]})["links"]
    assert [l["title"] for l in got] == ["third", "first"]
    assert dom.req("POST", url, json={"titles": ["third", "nope"]}).status_code == 404
    dom.ok("DELETE", url, params={"titles": "first/second"})
    assert dom.req("POST", url, json={"titles": ["first"]}).status_code == 410
    assert dom.req("DELETE", url, params={"titles": "third/nope"}).status_code == 404
    assert dom.ok("GET", f"{url}/third")["link"]["title"] == "third"   # nothing deleted


def test_follow_links_and_multi_put(dom):
    a = dom.group(name="a")
    b = dom.group(a, "b")
    dom.ok("PUT", f"/groups/{dom.root}/links", 201, json={
        "links": {"x": {"h5path": "/a"}, "y": {"id": b}}, "grp_ids": [dom.root, a]})
    assert dom.req("PUT", f"/groups/{dom.root}/links", json={
        "links": {"x": {"h5path": "/other"}}}).status_code == 409
    tree = dom.ok("GET", f"/groups/{dom.root}/links", params={"follow_links": 1})["links"]
    assert set(tree) == {dom.root, a, b}
    assert sorted(l["title"] for l in tree[a]) == ["b", "x", "y"]
    capped = dom.ok("GET", f"/groups/{dom.root}/links", params={"follow_links": 1, "Limit": 4})
    assert sum(len(v) for v in capped["links"].values()) == 4
    many = dom.ok("POST", f"/groups/{dom.root}/links", json={"grp_ids": [dom.root, a]})["links"]
    assert set(many) == {dom.root, a}
    assert [l["title"] for l in many[dom.root]] == ["a", "x", "y"]
    assert [l["title"] for l in many[a]] == ["b", "x", "y"] and many[a][0]["id"] == b
    some = dom.ok("POST", f"/groups/{dom.root}/links", json={"grp_ids": [dom.root, a]},
                  params={"pattern": "[xy]", "Limit": 1})["links"]
    assert {g: [l["title"] for l in v] for g, v in some.items()} == {dom.root: ["x"], a: ["x"]}


# ---- attributes ---------------------------------------------------------------

ATTRS = [
    ({"class": "H5T_INTEGER", "base": "H5T_STD_I32LE"}, None, 42),
    ("H5T_IEEE_F64LE", [3], [1.5, 2.5, 3.5]),
    ({"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII", "strPad": "H5T_STR_NULLPAD",
      "length": 7}, None, "1234567"),
    ({"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "strPad": "H5T_STR_NULLTERM",
      "length": "H5T_VARIABLE"}, [2], ["h\u00e9llo", "\u2713"]),
    ({"class": "H5T_COMPOUND", "fields": [{"name": "f", "type": "H5T_STD_I32LE"},
                                          {"name": "g", "type": "H5T_IEEE_F32LE"}]},
     None, [42, 0.42]),
    ({"class": "H5T_ARRAY", "dims": [3], "base": I32}, None, [7, 8, 9]),
    ({"class": "H5T_VLEN", "base": I32}, [2], [[1, 2, 3], []]),
    ({"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"},
      "mapping": {"FALSE": 0, "TRUE": 1}}, [2], [True, False]),
    ({"class": "H5T_REFERENCE", "base": "H5T_STD_REF_OBJ"}, None, "groups/ROOT"),
    ("H5T_STD_U64LE", [2], [0, 2**64 - 1]),
    ("H5T_STD_I16BE", [2, 2], [[1, -2], [3, -4]]),
]


def test_attribute_types_round_trip(dom):
    url = f"/groups/{dom.root}/attributes"
    for i, (type_json, shape, value) in enumerate(ATTRS):
        if value == "groups/ROOT":
            value = f"groups/{dom.root}"
        body = {"type": type_json, "value": value}
        if shape is not None:
            body["shape"] = shape
        dom.ok("PUT", f"{url}/a{i}", 201, json=body)
        got = dom.ok("GET", f"{url}/a{i}")
        assert got["value"] == value, (type_json, got["value"])
        expected_type = {"class": "H5T_INTEGER" if "STD" in type_json else "H5T_FLOAT",
                         "base": type_json} if isinstance(type_json, str) else type_json
        assert {k: got["type"][k] for k in expected_type} == expected_type
        assert got["name"] == f"a{i}" and len(got["hrefs"]) == 3
    listing = dom.ok("GET", url)["attributes"]
    assert [a["name"] for a in listing] == sorted(f"a{i}" for i in range(len(ATTRS)))
    assert "value" not in listing[0]
    assert dom.ok("GET", f"/groups/{dom.root}")["attributeCount"] == len(ATTRS)


def test_attribute_rules(dom):
    url = f"/groups/{dom.root}/attributes"
    body = {"type": I32, "shape": [3], "value": [1, 2, 3]}
    dom.ok("PUT", f"{url}/x", 201, json=body)
    dom.ok("PUT", f"{url}/x", 200, json=body)                       # identical
    changed = {**body, "value": [3, 2, 1]}
    assert dom.req("PUT", f"{url}/x", json=changed).status_code == 409
    first = dom.ok("GET", f"{url}/x")["created"]
    dom.ok("PUT", f"{url}/x", 201, json=changed, params={"replace": 1})
    again = dom.ok("GET", f"{url}/x")
    assert again["value"] == [3, 2, 1] and again["created"] == first
    bad = [{"shape": [2]}, {"type": "H5T_STD_I32", "value": 1}, {"type": I32, "value": [1, 2]},
           {"type": I32, "shape": "H5S_NULL", "value": 1}, {"type": {"class": "H5T_BOGUS"}},
           {"type": I32, "shape": -1}, {"type": I32, "value": "abc"}]
    for b in bad:
        assert dom.req("PUT", f"{url}/bad", json=b).status_code == 400, b
    assert dom.req("PUT", f"{url}/bad", data=b"{not json").status_code == 400
    dom.ok("PUT", f"{url}/empty", 201, json={"type": I32, "shape": "H5S_NULL"})
    assert dom.ok("GET", f"{url}/empty")["value"] is None
    assert dom.req("GET", f"{url}/empty/value").status_code == 400
    dom.ok("PUT", f"{url}/novalue", 201, json={"type": I32, "shape": [2]})
    assert dom.ok("GET", f"{url}/novalue")["value"] is None
    # NaN as a token, or null with ignore_nan
    dom.ok("PUT", f"{url}/nan", 201, data=json.dumps({"type": "H5T_IEEE_F64LE", "shape": [2],
                                                      "value": [float("nan"), 1.0]}))
    raw = dom.req("GET", f"{url}/nan").text
    assert "NaN" in raw
    assert dom.ok("GET", f"{url}/nan", params={"ignore_nan": 1})["value"] == [None, 1.0]
    # binary and base64
    rsp = dom.req("GET", f"{url}/x/value", headers={"Accept": "application/octet-stream"})
    assert rsp.headers["Content-Type"] == "application/octet-stream"
    assert rsp.content == b"\x03\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00"
    dom.ok("PUT", f"{url}/x/value", data=b"\x09\x00\x00\x00" * 3,
           headers={"Content-Type": "application/octet-stream"})
    assert dom.ok("GET", f"{url}/x/value")["value"] == [9, 9, 9]
    assert dom.req("PUT", f"{url}/x/value", data=b"\x01",
                   headers={"Content-Type": "application/octet-stream"}).status_code == 400
    b64 = dom.ok("GET", f"{url}/x", params={"encoding": "base64"})
    assert b64["encoding"] == "base64" and base64.b64decode(b64["value"]) == b"\x09\x00\x00\x00" * 3
    dom.ok("PUT", f"{url}/b64", 201, json={"type": "H5T_STD_U8LE", "shape": [2],
                                           "value": base64.b64encode(b"\xfe\xff").decode(),
                                           "encoding": "base64"})
    assert dom.ok("GET", f"{url}/b64")["value"] == [254, 255]
    assert dom.req("GET", f"{url}/x", params={"encoding": "hex"}).status_code == 400
    dom.ok("PUT", f"{url}/x/value", json={"value": [4, 5, 6]})
    assert dom.ok("GET", f"{url}/x")["value"] == [4, 5, 6]
    # delete, 410, multi forms
    dom.ok("DELETE", f"{url}/x")
    assert dom.req("GET", f"{url}/x").status_code == 410
    assert dom.req("DELETE", f"{url}/never").status_code == 404
    assert dom.req("GET", f"{url}/x", auth=U2).status_code == 403


def test_attribute_listing_and_multi(dom):
    url = f"/groups/{dom.root}/attributes"
    names = [f"attr{i}" for i in (3, 1, 2, 0)]
    dom.ok("PUT", url, 201, json={"attributes": {n: {"type": I32, "value": i}
                                                 for i, n in enumerate(names)}})
    listing = dom.ok("GET", url, params={"CreateOrder": 1, "IncludeData": 1})["attributes"]
    assert [a["name"] for a in listing] == names and listing[0]["value"] == 0
    assert "href" in listing[0]
    page = dom.ok("GET", url, params={"Limit": 2, "Marker": "attr0"})["attributes"]
    assert [a["name"] for a in page] == ["attr1", "attr2"]
    assert dom.req("GET", url, params={"Marker": "zzz"}).status_code == 404
    got = dom.ok("POST", url, json={"attr_names": ["attr2", "attr0"]},
                 params={"IncludeData": 1})["attributes"]
    assert [(a["name"], a["value"]) for a in got] == [("attr2", 2), ("attr0", 3)]
    assert dom.req("POST", url, json={"attr_names": ["nope"]}).status_code == 404
    g = dom.group(name="g")
    dom.ok("PUT", url, 201, json={"attributes": {"shared": {"type": I32, "value": 1}},
                                  "obj_ids": [dom.root, g]})
    both = dom.ok("POST", url, json={"obj_ids": {dom.root: ["shared"], g: ["shared"]}})
    assert set(both["attributes"]) == {dom.root, g}
    dom.ok("PUT", url, 201, json={"name": "single", "type": I32, "value": 3})
    dom.ok("DELETE", url, params={"attr_names": "attr1:attr2", "separator": ":"})
    assert dom.req("GET", f"{url}/attr1").status_code == 410
    enc = base64.b64encode(b"attr3/single").decode()
    dom.ok("DELETE", url, params={"attr_names": enc, "encoding": "base64"})
    assert dom.req("GET", f"{url}/single").status_code == 410
    assert dom.req("DELETE", url).status_code == 400
    tree = dom.ok("GET", url, params={"follow_links": 1})["attributes"]
    assert set(tree) == {dom.root, g}


# ---- datatypes, paths, collections ----------------------------------------------

def test_committed_datatypes(dom):
    ctype = {"class": "H5T_COMPOUND", "fields": [
        {"name": "temp", "type": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"}},
        {"name": "pressure", "type": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F64LE"}}]}
    made = dom.ok("POST", "/datatypes", 201, json={"type": ctype,
                                                   "link": {"id": dom.root, "name": "ctype"}})
    tid = made["id"]
    assert tid.startswith("t-") and made["type"] == ctype
    got = dom.ok("GET", f"/datatypes/{tid}")
    assert got["type"] == ctype and len(got["hrefs"]) == 4
    assert dom.ok("GET", "/datatypes/", params={"h5path": "/ctype"})["id"] == tid
    g = dom.group(name="g")
    assert dom.req("GET", "/datatypes/", params={"h5path": "/g"}).status_code == 410
    assert dom.ok("GET", "/datatypes")["datatypes"] == [tid]
    dom.ok("PUT", f"/datatypes/{tid}/attributes/units", 201,
           json={"type": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                          "strPad": "H5T_STR_NULLTERM", "length": "H5T_VARIABLE"},
                 "value": "K, Pa"})
    assert dom.ok("GET", f"/datatypes/{tid}/attributes/units")["value"] == "K, Pa"
    dom.ok("PUT", f"/groups/{g}/attributes/c", 201, json={"type": tid, "shape": [1],
                                                           "value": [[1.0, 2.0]]})
    attr = dom.ok("GET", f"/groups/{g}/attributes/c")
    assert attr["type"] == {**ctype, "id": tid}
    assert dom.req("POST", "/datatypes", json={"type": "H5T_STD_I32"}).status_code == 400
    assert dom.req("POST", "/datatypes", json={}).status_code == 400
    assert dom.req("POST", "/datatypes", json={"type": tid}).status_code == 400
    assert dom.req("GET", f"/groups/{tid}").status_code == 400
    dom.ok("DELETE", f"/datatypes/{tid}")
    assert dom.req("GET", f"/datatypes/{tid}").status_code == 410
    assert dom.ok("GET", f"/groups/{g}/attributes/c")["type"]["id"] == tid   # a copy


def test_paths_soft_external(dom, server):
    other = Domain(server)
    og = other.group(name="target")
    a = dom.group(name="a")
    b = dom.group(a, "b")
    dom.ok("PUT", f"/groups/{dom.root}/links/soft", 201, json={"h5path": "/a"})
    dom.ok("PUT", f"/groups/{a}/links/rel", 201, json={"h5path": "b"})
    dom.ok("PUT", f"/groups/{dom.root}/links/ext", 201,
           json={"h5path": "/target", "h5domain": other.path})
    found = dom.ok("GET", "/", params={"h5path": "/a/b"})
    assert found["id"] == b and found["class"] == "group" and found["domain"] == dom.path
    assert dom.req("GET", "/", params={"h5path": "/soft/b"}).status_code == 400
    assert dom.ok("GET", "/", params={"h5path": "/soft/b", "follow_soft_links": 1})["id"] == b
    assert dom.ok("GET", "/", params={"h5path": "/a/rel", "follow_soft_links": 1})["id"] == b
    assert dom.req("GET", "/", params={"h5path": "/ext"}).status_code == 400
    ext = dom.ok("GET", "/", params={"h5path": "/ext", "follow_external_links": 1})
    assert ext["id"] == og and ext["domain"] == other.path
    assert dom.req("GET", "/", params={"h5path": "/a/nope"}).status_code == 404
    many = dom.ok("POST", "/", json={"h5paths": ["/a", "a/b"]})["h5paths"]
    assert many["/a"]["id"] == a and many["a/b"]["id"] == b
    assert dom.req("POST", "/", json={"h5paths": "/a"}).status_code == 400
    assert dom.req("POST", "/", json={"h5paths": ["/nope"]}).status_code == 404


def test_domain_delete_removes_objects(dom, server):
    g = dom.group(name="g")
    dom.ok("PUT", f"/groups/{g}/attributes/x", 201, json={"type": I32, "value": 1})
    dom.ok("PUT", "/", json={"flush": 1, "getdnids": 1})
    dom.ok("DELETE", "/")
    assert dom.req("GET", f"/groups/{g}").status_code in (400, 404, 410)
    fresh = dom.ok("PUT", "/", 201)
    assert fresh["root"] != dom.root
    assert dom.req("GET", f"/groups/{g}").status_code in (400, 404, 410)


# ---- clients --------------------------------------------------------------------

@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_h5pyd_metadata_scenario(server, client):
    python, folder, _ = run_h5pyd_client(server, client, "h5pyd_metadata.py")
    # hsls -r lists what the scenario made
    hsls = Path(python).parent / "hsls"
    env = {**os.environ, "HS_ENDPOINT": server.endpoint, "HS_USERNAME": "test_user1",
           "HS_PASSWORD": "test"}
    out = subprocess.run([str(hsls), "-r", f"{folder}/meta.h5"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("/g1/g1.1/g1.1.1", "/g2/hard_alias", "/types/ctype"):
        assert name in out.stdout, out.stdout


def test_hsacl_grants_and_revokes(server):
    folder = f"/home/test_user1/acl{uuid.uuid4().hex[:8]}.h5"
    rsp = requests.put(server.endpoint + "/", params={"domain": folder}, auth=U1, timeout=10)
    assert rsp.status_code == 201
    hsacl = Path(sys.executable).parent / "hsacl"
    common = [str(hsacl), "-e", server.endpoint, "-u", "test_user1", "-p", "test", folder]
    get = lambda: requests.get(server.endpoint + "/", params={"domain": folder}, auth=U2,
                               timeout=10).status_code
    assert get() == 403
    out = subprocess.run(common + ["+r", "test_user2"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert get() == 200
    out = subprocess.run(common + ["-r", "test_user2"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert get() == 403
    listing = subprocess.run(common, capture_output=True, text=True, timeout=60)
    assert "test_user2" in listing.stdout


def test_verbose_statistics(dom):
    fresh = dom.ok("GET", "/", params={"verbose": 1})
    assert fresh["num_groups"] == 1 and fresh["num_datasets"] == 0
    assert fresh["num_chunks"] == 0 and fresh["allocated_bytes"] == 0
    assert 100 <= fresh["total_size"] <= 600
    assert {"scan_start", "scan_complete", "allocated_bytes"} <= set(fresh["scan_info"])
    dom.group(name="a")
    dom.ok("POST", "/datatypes", 201, json={"type": "H5T_STD_I8LE"})
    assert dom.req("PUT", "/", params={"flush": 1, "rescan": 1}).status_code == 204
    after = dom.ok("GET", "/", params={"verbose": 1})
    assert after["num_groups"] == 2 and after["num_datatypes"] == 1
    assert after["num_objects"] == 3 and after["metadata_bytes"] > 0
    folder = dom.ok("GET", "/", params={"domain": "/home/test_user1", "verbose": 1})
    assert "num_groups" not in folder
