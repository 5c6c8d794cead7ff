"""Read a domain through a running stock HSDS and compare it with the JSON file of what
was written (run inside hsds_anchor.sh's network namespace).

    python hsds_readback.py ENDPOINT DOMAIN EXPECTED_JSON

EXPECTED_JSON: {"datasets": {name: {"type": ..., "values": JSON values}}, "attrs": {...}}
Prints 'all ok' when every dataset and attribute reads back equal.
"""
import json
import math
import sys

import requests

endpoint, domain, expected_path = sys.argv[1], sys.argv[2], sys.argv[3]
expected = json.load(open(expected_path))
auth = ("test_user1", "test")


def get(path, **params):
    rsp = requests.get(endpoint + path, params={"domain": domain, **params}, auth=auth,
                       timeout=60)
    assert rsp.status_code == 200, (path, rsp.status_code, rsp.text[:300])
    return rsp.json()


def same(a, b):
    if b in ([], "") and a in (0, [], ""):
        return True      # HSDS shows an empty variable-length element as 0
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and (
            (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


root = get("/")["root"]
links = {l["title"]: l for l in get(f"/groups/{root}/links")["links"]}
for name, want in expected["datasets"].items():
    dset_id = links[name]["id"]
    doc = get(f"/datasets/{dset_id}")
    got = get(f"/datasets/{dset_id}/value")["value"]
    assert same(got, want["values"]), (name, got, want["values"])
    filters = [f.get("name") for f in doc.get("creationProperties", {}).get("filters", [])]
    assert filters == want.get("filters", []), (name, filters)
    print("ok", name, flush=True)
for name, want in expected["attrs"].items():
    got = get(f"/groups/{root}/attributes/{name}")["value"]
    assert same(got, want), (name, got, want)
print("all ok")
