"""Malformed requests of every route family against real SN + DN processes: whatever the
input, the answer is below 500 (or a 503 shed), it is JSON when it is an error, the
server keeps answering, and a canary domain reads back byte-identical afterwards.

Seeded (derandomized hypothesis) and bounded: a few thousand requests in all. A longer
run: FUZZ_EXAMPLES=5000 ./testall.sh tests/test_fuzz.py."""
import json
import os
import uuid

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import cluster_env, make_home, start_cluster

U1 = ("test_user1", "test")
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
pytestmark = pytest.mark.timeout(max(300, 2 * EXAMPLES))     # longer runs: more time
BINARY = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}
LINE_LIMIT = 8190      # aiohttp's longest request line: refused (plain text) before any handler


class Target:
    """A cluster with one fuzzed domain holding a group, datasets and a canary."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.http = requests.Session()
        self.http.auth = U1
        self.domain = f"/home/test_user1/fuzz{uuid.uuid4().hex[:6]}.h5"
        self.canary_domain = f"/home/test_user1/canary{uuid.uuid4().hex[:6]}.h5"
        self.root = self.call("PUT", "/", want=201)["root"]
        self.group = self.call("POST", "/groups", {"link": {"id": self.root, "name": "g"}},
                               want=201)["id"]
        self.dsets = {}
        for name, type_json, shape in (
                ("i4", "H5T_STD_I32LE", [20, 30]),
                ("cmp", {"class": "H5T_COMPOUND", "fields": [
                    {"name": "a", "type": "H5T_STD_I32LE"},
                    {"name": "b", "type": "H5T_IEEE_F64LE"}]}, [50]),
                ("vstr", {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8",
                          "strPad": "H5T_STR_NULLTERM", "length": "H5T_VARIABLE"}, [4])):
            self.dsets[name] = self.call("POST", "/datasets", {
                "type": type_json, "shape": shape, "link": {"id": self.root, "name": name}},
                want=201)["id"]
        canary_root = self.call("PUT", "/", domain=self.canary_domain, want=201)["root"]
        self.canary = self.call("POST", "/datasets", {
            "type": "H5T_IEEE_F32LE", "shape": [64, 64],
            "link": {"id": canary_root, "name": "c"}}, domain=self.canary_domain, want=201)["id"]
        self.canary_bytes = np.random.default_rng(1).random((64, 64), "f4").tobytes()
        rsp = self.http.put(f"{endpoint}/datasets/{self.canary}/value", data=self.canary_bytes,
                            params={"domain": self.canary_domain}, headers=BINARY, timeout=30)
        assert rsp.status_code == 200, rsp.text

    def call(self, method, path, body=None, want=None, domain=None, **kw):
        data = json.dumps(body) if body is not None else None
        rsp = self.http.request(method, self.endpoint + path, data=data,
                                params={"domain": domain or self.domain}, timeout=30, **kw)
        if want is not None:
            assert rsp.status_code == want, (method, path, rsp.status_code, rsp.text)
        return rsp.json()

    def send(self, method, path, params=None, body=None, raw=None, headers=None):
        """A request that must not fail the server: < 500 (503 allowed), JSON errors."""
        if raw is None and body is not None:
            raw = json.dumps(body, allow_nan=True).encode()
        query = {"domain": self.domain}
        query.update(params or {})
        try:
            rsp = self.http.request(method, self.endpoint + path, params=query, data=raw,
                                    headers=headers or {}, timeout=60)
        except requests.ConnectionError as e:
            raise AssertionError(f"connection broken by {method} {path} {query} {raw!r:.300}") \
                from e
        assert rsp.status_code < 500 or rsp.status_code == 503, \
            (method, path, query, (raw or b"")[:300], rsp.status_code, rsp.text[:300])
        if rsp.status_code >= 400 and len(rsp.request.url) + 20 > LINE_LIMIT:
            assert rsp.status_code in (400, 414), rsp.text     # aiohttp's parser said no
        elif rsp.status_code >= 400:
            assert rsp.headers.get("Content-Type", "").startswith("application/json"), rsp.text
            assert "error" in rsp.json() or "message" in rsp.json()
        return rsp


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    cluster = start_cluster(tmp, cluster_env(tmp, "posix"))
    make_home(cluster.endpoint)
    t = Target(cluster.endpoint)
    yield t
    # the server still answers and the canary is untouched
    about = requests.get(cluster.endpoint + "/about", timeout=10)
    rsp = t.http.get(f"{cluster.endpoint}/datasets/{t.canary}/value",
                     params={"domain": t.canary_domain}, headers=BINARY, timeout=30)
    cluster.stop()
    assert about.status_code == 200
    assert rsp.status_code == 200 and rsp.content == t.canary_bytes


# ---- strategies ---------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=20),
    st.sampled_from(["", ".", "..", "/", "//", "a/b", "\x00", "a\x00b", "\r\nX: y", "\x7f",
                     "%00", "é", "\u2028", "\ud7ff", "x" * 300, "x" * 5000, " ", "\t"]),
)
numbers = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, 10**12,
                                     10**18, 10**30]))
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(scalars, lambda c: st.one_of(
    st.lists(c, max_size=5), st.dictionaries(nasty_text, c, max_size=5)), max_leaves=20)
base_names = st.sampled_from(["H5T_STD_I32LE", "H5T_IEEE_F64LE", "H5T_STD_U8BE", "H5T_STD_I8LE",
                              "H5T_IEEE_F16LE", "H5T_STD_B8LE", "H5T_NOPE"])
types_ = st.recursive(
    st.one_of(base_names, scalars),
    lambda c: st.one_of(
        st.fixed_dictionaries({"class": st.just("H5T_ARRAY"), "base": c,
                               "dims": st.one_of(numbers, st.lists(numbers, max_size=4))}),
        st.fixed_dictionaries({"class": st.just("H5T_STRING"),
                               "length": st.one_of(numbers, st.just("H5T_VARIABLE"), scalars),
                               "charSet": st.sampled_from(["H5T_CSET_ASCII", "H5T_CSET_UTF8", 5]),
                               "strPad": st.sampled_from(["H5T_STR_NULLPAD", "x"])}),
        st.fixed_dictionaries({"class": st.just("H5T_COMPOUND"), "fields": st.lists(
            st.fixed_dictionaries({"name": nasty_text, "type": c}), max_size=4)}),
        st.fixed_dictionaries({"class": st.just("H5T_VLEN"), "base": c}),
        st.fixed_dictionaries({"class": st.just("H5T_ENUM"),
                               "base": st.just({"class": "H5T_INTEGER", "base": "H5T_STD_I8LE"}),
                               "mapping": st.dictionaries(nasty_text, numbers, max_size=3)}),
        st.fixed_dictionaries({"class": st.just("H5T_OPAQUE"), "size": numbers}),
        st.fixed_dictionaries({"class": st.sampled_from(["H5T_REFERENCE", "H5T_INTEGER", "X"]),
                               "base": scalars}),
        st.dictionaries(nasty_text, c, max_size=3)),
    max_leaves=8)
shapes = st.one_of(numbers, scalars, st.lists(numbers, max_size=5),
                   st.sampled_from(["H5S_NULL", "H5S_SCALAR", [0], [2**40, 2**40], [1] * 40]))
selections = st.one_of(
    nasty_text,
    st.lists(st.tuples(numbers, numbers, numbers), min_size=1, max_size=3).map(
        lambda dims: "[" + ",".join(f"{a}:{b}:{c}" for a, b, c in dims) + "]"),
    st.sampled_from(["[0:20,0:30]", "[:,:]", "[0:10:0,0]", "[-1:5,0]", "[0:2**70,0]", "[[1,2],0]",
                     "[0:20]", "[0:20,0:30,0:1]", "[]", "[", "[5:1,0]", "[0:1e30,0]"]))


# ---- route families -----------------------------------------------------------------

@FUZZ
@given(domain=nasty_text, bucket=st.one_of(st.none(), nasty_text),
       body=st.one_of(st.none(), json_values), method=st.sampled_from(["GET", "PUT", "DELETE"]))
def test_domains(target, domain, bucket, body, method):
    params = {"domain": domain}
    if bucket is not None:
        params["bucket"] = bucket
    if method == "DELETE" and not domain.startswith("/home/test_user1/x"):
        method = "GET"                      # never delete what the other tests use
    target.send(method, "/", params=params, body=body)
    target.send("GET", "/domains", params={**params, "domain": domain + "/"})


@FUZZ
@given(body=json_values, title=nasty_text, kind=st.sampled_from(["groups", "datatypes"]))
def test_groups_links_datatypes(target, body, title, kind):
    target.send("POST", f"/{kind}", body=body)
    target.send("POST", "/groups", body={"link": {"id": target.root, "name": title}})
    target.send("PUT", f"/groups/{target.group}/links/{title}", body=body)
    target.send("GET", f"/groups/{target.group}/links/{title}")
    target.send("PUT", f"/groups/{target.group}/links", body=body)
    target.send("POST", f"/groups/{target.group}/links", body=body)
    target.send("GET", f"/groups/{target.group}/links", params={"Limit": str(title),
                                                                "Marker": title})


@FUZZ
@given(name=nasty_text, type_json=types_, shape=shapes, value=json_values)
def test_attributes(target, name, type_json, shape, value):
    body = {"type": type_json, "shape": shape, "value": value}
    target.send("PUT", f"/groups/{target.group}/attributes/{name}", body=body)
    target.send("GET", f"/groups/{target.group}/attributes/{name}")
    target.send("PUT", f"/groups/{target.group}/attributes", body={"attributes": {name: body}})
    target.send("POST", "/datatypes", body={"type": type_json})


@FUZZ
@given(type_json=types_, shape=shapes, maxdims=st.one_of(st.none(), shapes),
       props=st.one_of(st.none(), json_values, st.fixed_dictionaries({
           "layout": st.one_of(json_values, st.fixed_dictionaries({
               "class": st.sampled_from(["H5D_CHUNKED", "H5D_CONTIGUOUS", "X"]),
               "dims": shapes})),
           "fillValue": json_values, "filters": json_values})))
def test_datasets(target, type_json, shape, maxdims, props):
    body = {"type": type_json, "shape": shape}
    if maxdims is not None:
        body["maxdims"] = maxdims
    if props is not None:
        body["creationProperties"] = props
    rsp = target.send("POST", "/datasets", body=body)
    if rsp.status_code == 201:
        did = rsp.json()["id"]
        target.send("GET", f"/datasets/{did}/value", params={"select": "[0:1]"})
        target.send("GET", f"/datasets/{did}/value", headers=BINARY)
        target.send("DELETE", f"/datasets/{did}")


@FUZZ
@given(kind=st.sampled_from(["i4", "cmp", "vstr"]), select=selections, value=json_values,
       raw=st.binary(max_size=200), points=json_values,
       query=st.one_of(nasty_text, st.sampled_from(["a > 1", "(a > 1) & (b < 3)", "a ==", "b in",
                                                    "where a > 1", "a > 1 | b"])),
       extra=st.dictionaries(st.sampled_from(["fields", "Limit", "nonstrict", "reduce_dim",
                                              "element_count", "append", "dn"]), nasty_text,
                             max_size=2))
def test_values(target, kind, select, value, raw, points, query, extra):
    did = target.dsets[kind]
    path = f"/datasets/{did}/value"
    target.send("GET", path, params={"select": select, **extra})
    target.send("GET", path, params={"select": select, **extra}, headers=BINARY)
    target.send("PUT", path, params={"select": select, **extra}, body={"value": value})
    target.send("PUT", path, params={"select": select}, raw=raw, headers=BINARY)
    target.send("POST", path, body={"points": points})
    target.send("POST", path, raw=raw, headers=BINARY)
    target.send("PUT", path, body={"points": points, "value": value})
    target.send("GET", path, params={"query": query, **extra})
    target.send("PUT", f"/datasets/{did}/shape", body=value)
