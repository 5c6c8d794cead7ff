"""The dataset scenario, run by whichever h5pyd the interpreter has (1.0.0 or 0.24.0).

    python h5pyd_datasets.py ENDPOINT FOLDER

Creates datasets of every kind, writes them, reopens the domain and reads them back
(full, strided, column, fancy, points, scalar), resizes, appends, and (0.24 only: 1.0
queries client-side) runs Table.read_where / update_where on the server.
Prints 'ok <step>' per step and 'all ok'.
"""
import sys

import h5pyd
import numpy as np

endpoint, folder = sys.argv[1], sys.argv[2].rstrip("/")
kw = dict(endpoint=endpoint, username="test_user1", password="test")
path = f"{folder}/data.h5"
OLD = h5pyd.__version__.startswith("0.")
rng = np.random.default_rng(7)


def step(name):
    print("ok", name, flush=True)


f32 = rng.random((200, 300), dtype=np.float32)
i16 = np.arange(1000 * 30, dtype="<i2").reshape(1000, 30)
be = (np.arange(50) * 1000).astype(">i4")
cdt = np.dtype([("id", "<i4"), ("temp", "<f4"), ("sym", "S4")])
table = np.zeros(5000, cdt)
table["id"] = np.arange(5000)
table["temp"] = (np.arange(5000) % 100).astype("f4")
table["sym"] = np.array([b"AAPL", b"MSFT", b"GOOG", b"EBAY"])[np.arange(5000) % 4]
strings = ["", "ascii", "\u00fcn\u00efc\u00f6d\u00e9", "x" * 100]

with h5pyd.File(path, "w", **kw) as f:
    f.create_dataset("f32", data=f32, chunks=(64, 128))
    f.create_dataset("i16_gzip", data=i16, compression="gzip", shuffle=True, chunks=(250, 30))
    f.create_dataset("be", data=be)
    f.create_dataset("fill", shape=(40, 40), dtype="f8", fillvalue=-2.5, chunks=(16, 16))
    f["fill"][0:8, 0:8] = np.ones((8, 8))
    f.create_dataset("scalar", data=np.float64(3.25))
    f.create_dataset("table", data=table, chunks=(1000,))
    vs = f.create_dataset("vstr", (4,), dtype=h5pyd.special_dtype(vlen=str))
    vs[:] = strings
    f.create_dataset("ext", shape=(10,), maxshape=(None,), dtype="i4", chunks=(4,))
    f["ext"][:] = np.arange(10)
    f.create_dataset("bools", data=np.array([True, False, True]))
    # computed by the server chunk by chunk: element i = 10 + 2 i
    f.create_dataset("arange", (40,), dtype="i8", chunks=(16,), initializer="arange",
                     initializer_opts=["--start=10", "--step=2"])
    f.create_dataset("nanfill", (6,), dtype="f4", fillvalue=np.nan, maxshape=(None,))
    f["nanfill"][2] = 1.0
step("write")

with h5pyd.File(path, "r", **kw) as f:
    assert np.array_equal(f["arange"][...], 10 + 2 * np.arange(40)), f["arange"][...]
    assert f["arange"][20] == 50
    nan = f["nanfill"]
    assert np.isnan(nan.fillvalue) and nan.maxshape == (None,), (nan.fillvalue, nan.maxshape)
    assert nan[2] == 1.0 and np.isnan(nan[[0, 1, 3, 4, 5]] if not OLD else nan[3:]).all()
step("initializer and NaN fill")

with h5pyd.File(path, "r", **kw) as f:
    d = f["f32"]
    assert d.shape == (200, 300) and d.dtype == np.float32 and len(d.chunks) == 2, d.chunks
    assert np.array_equal(d[...], f32)
    assert np.array_equal(d[3:197:5, 10:290:7], f32[3:197:5, 10:290:7])
    assert np.array_equal(d[:, 17], f32[:, 17])
    assert np.array_equal(d[5, [3, 100, 250]], f32[5, [3, 100, 250]])
    assert np.array_equal(d[150], f32[150])
    assert d[199, 299] == f32[199, 299]
    step("f32")
    g = f["i16_gzip"]
    assert g.compression == "gzip", g.compression
    assert np.array_equal(g[...], i16)
    assert np.array_equal(g[990:1000, 5], i16[990:1000, 5])
    step("gzip")
    assert np.array_equal(f["be"][...], be) and f["be"].dtype == np.dtype(">i4")
    fill = f["fill"][...]
    assert np.all(fill[0:8, 0:8] == 1) and np.all(fill[8:, :] == -2.5) and fill[0, 39] == -2.5
    assert f["scalar"][()] == 3.25
    step("fill-scalar")
    t = f["table"]
    assert np.array_equal(t[...], table)
    assert np.array_equal(t[1000:1100], table[1000:1100])
    assert np.array_equal(t[10:20]["temp"], table["temp"][10:20])
    step("table")
    got = [s.decode() if isinstance(s, bytes) else s for s in f["vstr"][...]]
    assert got == strings, got
    assert list(f["bools"][...]) == [True, False, True]
    step("vlen-bool")

with h5pyd.File(path, "a", **kw) as f:
    e = f["ext"]
    e.resize((20,))
    e[10:20] = np.arange(10, 20)
    f["f32"][0:2, 0:3] = np.zeros((2, 3), "f4")
step("resize")

with h5pyd.File(path, "r", **kw) as f:
    assert f["ext"].shape == (20,)
    assert np.array_equal(f["ext"][...], np.arange(20))
    assert np.all(f["f32"][0:2, 0:3] == 0) and f["f32"][2, 0] == f32[2, 0]
    pts = f["f32"][[1, 50, 199], [2, 60, 0]] if not OLD else None
    if pts is not None:
        assert np.array_equal(pts, np.array([0, f32[50, 60], f32[199, 0]], "f4")), pts
step("reread")

if OLD:
    with h5pyd.File(path, "a", **kw) as f:
        t = f["table"]
        rows = t.read_where("temp > 97.5")
        assert len(rows) == 100 and np.all(rows["temp"] > 97.5), len(rows)
        t.update_where("sym == b'EBAY'", {"temp": -1.0}, limit=3)
    with h5pyd.File(path, "r", **kw) as f:
        temps = f["table"][0:20]["temp"]
        assert list(temps[[3, 7, 11]]) == [-1.0, -1.0, -1.0] and temps[15] == 15.0, temps
    step("queries")
print("all ok")
