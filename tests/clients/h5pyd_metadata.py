"""The metadata scenario (groups, links, attributes, committed types), run by
whichever h5pyd the interpreter has (1.0.0 or 0.24.0).

    python h5pyd_metadata.py ENDPOINT FOLDER      (FOLDER: an existing folder of test_user1)

Writes a domain, reopens it in a new session and checks every value; prints
'ok <step>' per step and 'all ok' at the end.
"""
import sys

import h5pyd
import numpy as np

endpoint, folder = sys.argv[1], sys.argv[2].rstrip("/")
# h5pyd 1.0 sends a deletion in mode 'a' only for items created after its last flush,
# so deleting what an earlier session made never reaches any server (HSDS included)
DELETES_REACH_SERVER = h5pyd.__version__.startswith("0.")
user1 = dict(endpoint=endpoint, username="test_user1", password="test")
path = f"{folder}/meta.h5"
other = f"{folder}/other.h5"

compound = np.dtype([("x", "<i4"), ("y", "<f8"), ("name", "S8")])
vlen_str = h5pyd.special_dtype(vlen=str)
vlen_i4 = h5pyd.special_dtype(vlen=np.dtype("int32"))
ATTRS = {
    "int32": np.int32(42),
    "float64_arr": np.array([1.5, -2.25, np.pi]),
    "uint64_big": np.uint64(2**64 - 1),
    "fixed_bytes": np.bytes_(b"fixed"),
    "int16_2d": np.arange(6, dtype="<i2").reshape(2, 3),
    "bigendian": np.array([1000, -1], dtype=">i4"),
    "bool": np.bool_(True),
    "compound": np.array([(1, 2.5, b"one"), (2, -3.25, b"two")], dtype=compound),
    "nan": np.array([np.nan, 1.0, np.inf]),
}


def step(name):
    print("ok", name, flush=True)


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.names:
        return a.shape == b.shape and all(same(a[n], b[n]) for n in a.dtype.names)
    if a.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


with h5pyd.File(other, "w", **user1) as f:
    f.create_group("target_group")
    f["target_group"].attrs["where"] = "other"
step("other-domain")

with h5pyd.File(path, "w", **user1) as f:
    g1 = f.create_group("g1")
    g11 = g1.create_group("g1.1")
    g11.create_group("g1.1.1")
    f.create_group("g2/deep/deeper")       # intermediate groups
    f["g2/soft"] = h5pyd.SoftLink("/g1/g1.1")
    f["g2/ext"] = h5pyd.ExternalLink(other, "/target_group")
    f["g2/hard_alias"] = g11
    f.create_group("types")
    f["types/ctype"] = np.dtype([("temp", "<f4"), ("pressure", "<f8")])
    for name, value in ATTRS.items():
        f.attrs[name] = value
    f.attrs["vlen_str"] = "h\u00e9llo w\u00f6rld \u2713"
    f.attrs.create("vlen_str_arr", ["a", "bc", "\u4e00"], dtype=vlen_str)
    f.attrs["empty"] = h5pyd.Empty("f4")
    g11.attrs["depth"] = 2
    f["types/ctype"].attrs["units"] = "K, Pa"
step("write")

with h5pyd.File(path, "r", **user1) as f:
    assert sorted(f) == ["g1", "g2", "types"], sorted(f)
    assert sorted(f["g2"]) == ["deep", "ext", "hard_alias", "soft"], sorted(f["g2"])
    assert "g1.1.1" in f["g1/g1.1"]
    assert f["g2/deep/deeper"].name == "/g2/deep/deeper"
    assert f["g2/hard_alias"].id.id == f["g1/g1.1"].id.id
    soft = f["g2"].get("soft", getlink=True)
    assert isinstance(soft, h5pyd.SoftLink) and soft.path == "/g1/g1.1", soft
    assert f["g2"]["soft"].id.id == f["g1/g1.1"].id.id
    ext = f["g2"].get("ext", getlink=True)
    assert isinstance(ext, h5pyd.ExternalLink) and ext.path == "/target_group", ext
    assert ext.filename.endswith("other.h5"), ext.filename
    # followed: h5pyd 1.0 reads the target from the link's `file`, 0.24 from `h5domain`
    # (1.0 follows no external link inside a longer path: f["g2/ext"] is refused there)
    assert f["g2"]["ext"].attrs["where"] == "other"
    step("links")
    for name, value in ATTRS.items():
        got = f.attrs[name]
        assert same(got, value), (name, got, value)
    assert f.attrs["vlen_str"] == "h\u00e9llo w\u00f6rld \u2713"
    assert list(f.attrs["vlen_str_arr"]) == ["a", "bc", "\u4e00"], f.attrs["vlen_str_arr"]
    empty = f.attrs["empty"]
    assert isinstance(empty, h5pyd.Empty) or getattr(empty, "shape", None) is None, empty
    assert f["g1/g1.1"].attrs["depth"] == 2
    ctype = f["types/ctype"]
    assert isinstance(ctype, h5pyd.Datatype)
    assert ctype.dtype.names == ("temp", "pressure")
    assert ctype.attrs["units"] == "K, Pa"
    assert set(f.attrs) == set(ATTRS) | {"vlen_str", "vlen_str_arr", "empty"}
    step("attributes")

with h5pyd.File(path, "a", **user1) as f:
    f.attrs["added"] = np.int32(7)
    if DELETES_REACH_SERVER:
        del f.attrs["nan"]
        del f["g2"]["deep"]
    f["g1"].attrs.create("later", np.arange(3))
step("modify")

with h5pyd.File(path, "r", **user1) as f:
    assert f.attrs["added"] == 7 and f.attrs["int32"] == 42
    if DELETES_REACH_SERVER:
        assert "nan" not in f.attrs
        assert "deep" not in f["g2"]
    assert list(f["g1"].attrs["later"]) == [0, 1, 2]
step("reread")
print("all ok")
