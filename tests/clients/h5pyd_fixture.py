"""Read the HSDS-written fixture domain through whichever h5pyd this interpreter has
and compare with expected.json: groups, links, attributes, committed types.

    python h5pyd_fixture.py ENDPOINT EXPECTED_JSON

Prints 'checked N objects, M attributes, L links' and 'all ok'; exits non-zero on
the first difference.
"""
import json
import math
import sys

import h5pyd
import numpy as np

endpoint, expected_path = sys.argv[1], sys.argv[2]
OLD_CLIENT = h5pyd.__version__.startswith("0.")
expected = json.load(open(expected_path))
f = h5pyd.File(expected["domain"], "r", endpoint=endpoint, username="test_user1",
               password="test")


def plain(value):
    """numpy/h5pyd values -> JSON-like Python values for comparison."""
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            return [plain(v) for v in value] if value.shape else plain(value[()])
        return [plain(v) for v in value] if value.ndim else plain(value[()])
    if isinstance(value, np.void) and value.dtype.names:
        return [plain(value[n]) for n in value.dtype.names]
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).rstrip(b"\0").decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def same(got, want) -> bool:
    if want in ([], "") and got in (0, [], ""):
        return True   # h5pyd reads an empty vlen element from binary as 0
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(want, (int, float)) and isinstance(got, (int, float)):
            return (math.isnan(want) and math.isnan(got)) or math.isclose(got, want,
                                                                          rel_tol=1e-6)
        return False
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))
    if isinstance(want, list) and len(want) == 1:
        return same(got, want[0])
    return got == want


def obj_at(path):
    if path == "/":
        return f
    obj = f
    for part in path.strip("/").split("/"):
        obj = obj[part]
    return obj


def check_dataset(path, dset, exp):
    dims = exp["shape"].get("dims")
    assert tuple(dset.shape) == tuple(dims or ()), (path, dset.shape, dims)
    if exp["layout"]["class"] == "H5D_CHUNKED":
        assert tuple(dset.chunks) == tuple(exp["layout"]["dims"]), (path, dset.chunks)
    data = dset[()] if dims is None else dset[...]
    for sample in exp.get("samples", []):
        got = data[tuple(sample["index"])] if sample["index"] else data
        assert same(plain(got), sample["value"]), (path, sample, plain(got))
    summary = exp.get("summary", {})
    if "values" in summary:
        assert same(plain(data), summary["values"]), (path, plain(data), summary["values"])
    if "sum" in summary:
        assert math.isclose(float(np.sum(data, dtype=np.float64)), summary["sum"],
                            rel_tol=1e-6), (path, np.sum(data), summary["sum"])
    for name, total in summary.get("field_sums", {}).items():
        if isinstance(total, (int, float)):
            assert math.isclose(float(np.sum(data[name], dtype=np.float64)), total,
                                rel_tol=1e-6), (path, name)


attrs_checked = links_checked = datasets_checked = 0
for path, exp in sorted(expected["objects"].items()):
    obj = obj_at(path)
    assert obj.id.id == exp["id"], (path, obj.id.id, exp["id"])
    for name, attr in exp.get("attributes", {}).items():
        if attr["type"]["class"] == "H5T_ARRAY" and OLD_CLIENT:
            continue   # h5pyd 0.24 turns a scalar array attribute into 3x3 (its own bug)
        got = obj.attrs[name]
        if attr["shape"]["class"] == "H5S_NULL":
            assert isinstance(got, h5pyd.Empty) or got is None, (path, name, got)
        else:
            assert same(plain(got), attr["value"]), (path, name, plain(got), attr["value"])
        attrs_checked += 1
    assert sorted(obj.attrs) == sorted(exp.get("attributes", {})), (path, sorted(obj.attrs))
    if exp["kind"] == "group":
        assert sorted(obj) == sorted(exp["links"]), (path, sorted(obj), sorted(exp["links"]))
        for title, link in exp["links"].items():
            got = obj.get(title, getlink=True)
            if link["class"] == "H5L_TYPE_HARD":
                assert isinstance(got, h5pyd.HardLink), (path, title, got)
                assert obj[title].id.id == link["id"], (path, title)
            elif link["class"] == "H5L_TYPE_SOFT":
                assert isinstance(got, h5pyd.SoftLink) and got.path == link["h5path"], (
                    path, title, got)
            else:
                assert isinstance(got, h5pyd.ExternalLink), (path, title, got)
                assert got.path == link["h5path"], (path, title, got.path)
                target = link.get("file", link.get("h5domain"))
                assert got.filename == target, (path, title, got.filename, target)
            links_checked += 1
    elif exp["kind"] == "dataset":
        check_dataset(path, obj, exp)
        datasets_checked += 1
    elif exp["kind"] == "datatype":
        assert isinstance(obj, h5pyd.Datatype), path
        names = [fld["name"] for fld in exp["type"].get("fields", [])]
        assert list(obj.dtype.names or []) == names, (path, obj.dtype)
print(f"checked {len(expected['objects'])} objects, {attrs_checked} attributes, "
      f"{links_checked} links, {datasets_checked} datasets")
f.close()
print("all ok")
