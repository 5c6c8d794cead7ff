"""h5pyd 0.24's http+lambda:// transport against the hslambda function.

    python h5pyd_lambda.py read DOMAIN OUT.npz     # full and strided reads -> OUT.npz
    python h5pyd_lambda.py write DOMAIN            # groups, attributes, a dataset

The function is reached with boto3's Lambda client, so AWS_ENDPOINT_URL_LAMBDA (the
local Invoke endpoint) and AWS_DEFAULT_REGION come from the environment. Prints
'ok <step>' per step and 'all ok'.
"""
import sys

import h5pyd
import numpy as np

mode, domain = sys.argv[1], sys.argv[2]
kw = dict(endpoint="http+lambda://hslambda", username="hslambda", password="lambda")


def step(name):
    print("ok", name, flush=True)


if mode == "read":
    with h5pyd.File(domain, "r", **kw) as f:
        dset = f["grid"]
        full = dset[...]
        step("full")
        strided = dset[3:190:7, ::5]
        step("strided")
        column = dset[:, 17]
        step("column")
        attr = f.attrs["title"]
        big = f["big"][...]
        step("big (paged)")
        np.savez(sys.argv[3], full=full, strided=strided, column=column, big=big,
                 shape=np.array(dset.shape), chunks=np.array(dset.chunks), title=attr)
elif mode == "write":
    with h5pyd.File(domain, "w", **kw) as f:
        g = f.create_group("results")
        g.create_group("run1")
        step("groups")
        f.attrs["made_by"] = "hslambda"
        g.attrs.create("scores", np.array([1.5, 2.5, 4.0]))
        step("attributes")
        f.create_dataset("empty", shape=(10,), dtype="i4")
        step("dataset")
        try:       # value writes send a binary body, which h5pyd can not put in an event
            f["empty"][0:3] = [1, 2, 3]
            step("value write (unexpected)")
        except Exception as e:
            print("value write failed in h5pyd:", type(e).__name__, flush=True)
    with h5pyd.File(domain, "r", **kw) as f:
        assert sorted(f["results"]) == ["run1"]
        assert f.attrs["made_by"] == "hslambda"
        assert list(f["results"].attrs["scores"]) == [1.5, 2.5, 4.0]
        assert f["empty"].shape == (10,)
        step("read back")
else:
    raise SystemExit(f"unknown mode {mode}")
print("all ok")
