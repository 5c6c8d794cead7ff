"""The other direction of compatibility: what h5cloud writes into a copy of the
HSDS-written bucket reads back equal through stock HSDS 1.0.2 started on it
(../shared/bench/hsds_anchor.sh, HSDS from PyPI in its own venv, never a dependency)."""
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import REPO, SHARED, cluster_env, copy_fixture, start_cluster

HSDS_VENV = REPO / ".venv-hsds"
ANCHOR = SHARED / "bench" / "hsds_anchor.sh"
U1 = ("test_user1", "test")
VSTR = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "strPad": "H5T_STR_NULLTERM",
        "length": "H5T_VARIABLE"}
CTYPE = {"class": "H5T_COMPOUND", "fields": [
    {"name": "n", "type": "H5T_STD_I16LE"}, {"name": "x", "type": "H5T_IEEE_F64LE"},
    {"name": "s", "type": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                           "strPad": "H5T_STR_NULLPAD", "length": 6}}]}


def datasets():
    """name -> (create body, JSON values to write, filters HSDS should report)."""
    big = (np.arange(300 * 500) % 251).reshape(300, 500)
    out = {}
    for name in ("gzip", "zstd", "lz4", "lz4hc", "blosclz"):
        out[f"f_{name}"] = ({"type": "H5T_STD_I32LE", "shape": [300, 500], "creationProperties": {
            "layout": {"class": "H5D_CHUNKED", "dims": [300, 500]},
            "filters": ["shuffle", name]}}, big.tolist(), ["shuffle", name])
    # bitshuffle (issue 12): H5Z_FILTER_BITSHUFFLE is stored as if absent; a shuffle
    # filter named "bitshuffle" makes bitshuffle-LZ4 blobs -- both as HSDS 1.0.2 does
    bs = {"class": "H5Z_FILTER_BITSHUFFLE", "id": 32008, "name": "bitshuffle"}
    sb = {"class": "H5Z_FILTER_SHUFFLE", "name": "bitshuffle"}
    gz4 = {"class": "H5Z_FILTER_DEFLATE", "id": 1, "level": 4}
    halves = (big * 0.5 - 17.25).tolist()
    odd = ((np.arange(5003) * 37) % 65536 - 32768).tolist()
    for name, t, values, filters, names in (
            ("bs_i4", "H5T_STD_I32LE", big.tolist(), [bs], ["bitshuffle"]),
            ("bs_gzip_i4", "H5T_STD_I32LE", big.tolist(), [bs, "gzip"], ["bitshuffle", "gzip"]),
            ("bs_f8", "H5T_IEEE_F64LE", halves, [bs], ["bitshuffle"]),
            ("bs_gzip_f8", "H5T_IEEE_F64LE", halves, [bs, gz4], ["bitshuffle", "gzip"]),
            ("shuffle_bs_lz4_f8", "H5T_IEEE_F64LE", halves, ["shuffle", bs, "lz4"],
             ["shuffle", "bitshuffle", "lz4"]),
            ("sb_i4", "H5T_STD_I32LE", big.tolist(), [sb], ["bitshuffle"]),
            ("sb_gzip_i4", "H5T_STD_I32LE", big.tolist(), [sb, "gzip"], ["bitshuffle", "gzip"]),
            ("sb_zstd_f8", "H5T_IEEE_F64LE", halves, [sb, "zstd"], ["bitshuffle", "zstd"]),
            ("sb_odd_i2", "H5T_STD_I16LE", odd, [sb, "lz4"], ["bitshuffle", "lz4"])):
        shape, chunks = ([5003], [5003]) if name == "sb_odd_i2" else ([300, 500], [100, 250])
        out[name] = ({"type": t, "shape": shape, "creationProperties": {
            "layout": {"class": "H5D_CHUNKED", "dims": chunks}, "filters": filters}},
            values, names)
    out["fill"] = ({"type": "H5T_IEEE_F32LE", "shape": [20], "creationProperties": {
        "fillValue": -1.5}}, [float(i) if i < 10 else -1.5 for i in range(20)], [])
    out["vstr"] = ({"type": VSTR, "shape": [4]}, ["", "ascii", "\u00e9t\u00e9", "x" * 50], [])
    out["vint"] = ({"type": {"class": "H5T_VLEN", "base": "H5T_STD_I32LE"}, "shape": [3]},
                   [[1, 2, 3], [], [-5]], [])
    out["cmpd"] = ({"type": CTYPE, "shape": [3]},
                   [[1, 1.5, "one"], [-2, 2.5, "two"], [300, -0.25, "three"]], [])
    out["bool"] = ({"type": {"class": "H5T_ENUM", "base": {"class": "H5T_INTEGER",
                                                           "base": "H5T_STD_I8LE"},
                             "mapping": {"FALSE": 0, "TRUE": 1}}, "shape": [3]},
                   [True, False, True], [])
    out["be"] = ({"type": "H5T_STD_I64BE", "shape": [4]}, [1, -2, 3 << 40, 0], [])
    return out


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="hsds_anchor.sh needs unshare as root")
def test_hsds_reads_what_h5cloud_wrote(tmp_path):
    if not (HSDS_VENV / "bin" / "hsds").exists():
        pytest.skip("no .venv-hsds (./testall.sh installs hsds==1.0.2 there)")
    root = copy_fixture(tmp_path / "root")
    cluster = start_cluster(tmp_path, cluster_env(tmp_path, "posix", root_dir=root))
    domain = f"/home/test_user1/ours{uuid.uuid4().hex[:6]}.h5"
    expected = {"datasets": {}, "attrs": {}}
    try:
        base, params = cluster.endpoint, {"domain": domain}
        assert requests.put(base + "/", params=params, auth=U1, timeout=10).status_code == 201
        root_id = requests.get(base + "/", params=params, auth=U1, timeout=10).json()["root"]
        for name, (body, values, filters) in datasets().items():
            body = {**body, "link": {"id": root_id, "name": name}}
            rsp = requests.post(base + "/datasets", params=params, auth=U1, json=body, timeout=10)
            assert rsp.status_code == 201, rsp.text
            did = rsp.json()["id"]
            sel = {"select": "[0:10]"} if name == "fill" else {}
            rsp = requests.put(f"{base}/datasets/{did}/value", params={**params, **sel}, auth=U1,
                               json={"value": values[:10] if name == "fill" else values},
                               timeout=30)
            assert rsp.status_code == 200, rsp.text
            expected["datasets"][name] = {"values": values, "filters": filters}
        attrs = {"a_int": ("H5T_STD_I32LE", 42), "a_vstr": (VSTR, "h\u00e9llo"),
                 "a_cmpd": (CTYPE, [7, 0.5, "abc"])}
        for name, (type_json, value) in attrs.items():
            rsp = requests.put(f"{base}/groups/{root_id}/attributes/{name}", params=params,
                               auth=U1, json={"type": type_json, "value": value}, timeout=10)
            assert rsp.status_code == 201
            expected["attrs"][name] = value
    finally:
        cluster.stop()                # a clean stop: everything is in the bucket now
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    env = {**os.environ, "ANCHOR_DIR": str(tmp_path / "anchor"), "HSDS_VENV": str(HSDS_VENV),
           "HSDS_DATA": str(root), "HSDS_DN_COUNT": "2"}
    start = subprocess.run(["bash", str(ANCHOR), "start"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        read = subprocess.run(["bash", str(ANCHOR), "exec", sys.executable,
                               str(Path(__file__).parent / "clients" / "hsds_readback.py"),
                               "http://127.0.0.1:5101", domain, str(tmp_path / "expected.json")],
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["bash", str(ANCHOR), "stop"], env=env, capture_output=True, timeout=300)
    assert read.returncode == 0, read.stdout + read.stderr
    assert "all ok" in read.stdout
