"""Nested variable-length values through h5pyd (1.0.0 or 0.24.0): the types of h5pyd's
test_attribute_data TestScalar::test_nesting_compound_with_vlen_fields /
test_vlen_compound_with_vlen_string and test_datatype::test_nested_compound_vlen.

    python h5pyd_nested_vlen.py ENDPOINT FOLDER      (FOLDER: an existing folder of test_user1)

Prints 'ok <step>' per step and 'all ok' at the end.
"""
import sys

import h5pyd
import numpy as np

endpoint, folder = sys.argv[1], sys.argv[2].rstrip("/")
# h5pyd 0.24's binary encoder cannot pack a vlen of compounds with vlen fields
CLIENT_ENCODES_NESTED = not h5pyd.__version__.startswith("0.")
user1 = dict(endpoint=endpoint, username="test_user1", password="test")
path = f"{folder}/nested_vlen.h5"

vi4 = h5pyd.vlen_dtype(np.int32)
dt_inner = np.dtype([("a", vi4), ("b", vi4)])
dt = np.dtype([("f1", h5pyd.vlen_dtype(dt_inner)), ("f2", np.int64)])
inner1 = (np.arange(1, 3, dtype=np.int32), np.arange(6, 9, dtype=np.int32))
inner2 = (np.arange(10, 14, dtype=np.int32), np.arange(16, 21, dtype=np.int32))
dt_s = np.dtype([("a", h5pyd.string_dtype()), ("b", h5pyd.string_dtype())])
dt_vs = np.dtype([("f", h5pyd.vlen_dtype(dt_s))])


def step(name):
    print("ok", name, flush=True)


def canon(x):
    """A nested-list form of a (structured / object) numpy value; h5pyd 0.24 returns
    nested compounds read from JSON as tuples, 1.0 as structured arrays."""
    if isinstance(x, np.void) and x.dtype.names:
        return [canon(x[name]) for name in x.dtype.names]
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            return canon(x[()])
        return [canon(e) for e in x]
    if isinstance(x, (list, tuple)):
        return [canon(e) for e in x]
    if isinstance(x, bytes):
        return x.decode()
    if isinstance(x, np.generic):
        return x.item()
    return x


def same_nested(x, y):
    assert canon(x) == canon(y), (x, y)


with h5pyd.File(path, "w", **user1) as f:
    scalar = np.array((np.array([inner1, inner2], dtype=dt_inner), 2), dtype=dt)[()]
    f.attrs["nested_compound_vlen_attr"] = scalar
    same_nested(f.attrs["nested_compound_vlen_attr"], scalar)
    step("attribute compound with vlen of compound with vlen fields")

    strs = np.array((np.array([(b"apples", b"bananas"), (b"peaches", b"oranges")],
                              dtype=dt_s),), dtype=dt_vs)[()]
    f.attrs["vlen_compound_vlen_string_attr"] = strs
    same_nested(f.attrs["vlen_compound_vlen_string_attr"], strs)
    step("attribute vlen of compound with vlen strings")

    data = np.array([(np.array([inner1, inner2], dtype=dt_inner), 2),
                     (np.array([inner1], dtype=dt_inner), 3)], dtype=dt)
    if CLIENT_ENCODES_NESTED:
        f["ds"] = data
        same_nested(f["ds"][...], data)
        step("dataset of compound with vlen of compound with vlen fields")
    else:
        # h5pyd 0.24 packs the object pointers of the inner records (HSDS 1.0.2 answers
        # 400 too); the server must refuse such a body, not store it
        try:
            f["ds"] = data
        except OSError as e:
            assert "400" in str(e), e
        else:
            raise AssertionError("h5pyd 0.24's broken body was accepted")
        step("dataset body of h5pyd 0.24 refused")

with h5pyd.File(path, "r", **user1) as f:
    same_nested(f.attrs["nested_compound_vlen_attr"], scalar)
    same_nested(f.attrs["vlen_compound_vlen_string_attr"], strs)
    if CLIENT_ENCODES_NESTED:
        same_nested(f["ds"][...], data)
    step("reopened")

print("all ok")
