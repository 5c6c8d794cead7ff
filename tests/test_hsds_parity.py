"""Side by side with stock HSDS 1.0.2: the same REST requests (tests/clients/parity_probe.py)
against h5cloud and against HSDS (../shared/bench/hsds_anchor.sh, its own venv, never a
dependency) give the same status codes and answers of the same shape (keys and value
types). Where they differ on purpose, the difference is listed here with its reason."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CLIENTS, REPO, SHARED, cluster_env, make_home, start_cluster

HSDS_VENV = REPO / ".venv-hsds"
ANCHOR = SHARED / "bench" / "hsds_anchor.sh"
PROBE = CLIENTS / "parity_probe.py"

# keys only h5cloud answers with: a dataset GET's top-level layout and bucket, an external
# link's second name for its target (h5pyd 0.24 reads h5domain, 1.0 file), a domain's
# limit of chunks per folder
OURS_ONLY = {"bucket", "layout", "h5domain", "max_chunks_per_folder"}
# keys only HSDS answers with: the status echoed in a value read
HSDS_ONLY = {"status"}


def shape_differences(ours, theirs, where="") -> list:
    """Where the shape of our answer differs from HSDS's: every key HSDS gives we give
    alike; extra keys only those of OURS_ONLY."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                if key not in OURS_ONLY:
                    out.append(f"{where}.{key} only in ours")
            elif key not in ours:
                if key not in HSDS_ONLY:
                    out.append(f"{where}.{key} only in HSDS's")
            else:
                out += shape_differences(ours[key], theirs[key], f"{where}.{key}")
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and ours and theirs:
        return shape_differences(ours[0], theirs[0], f"{where}[0]")
    return [] if ours == theirs else [f"{where or 'answer'}: {ours} vs HSDS {theirs}"]


def differences(ours: list, hsds: list) -> list:
    out = []
    theirs = {s["step"]: s for s in hsds}
    for mine in ours:
        other = theirs.get(mine["step"])
        if other is None:
            out.append(f"{mine['step']}: HSDS did not get this far")
            continue
        a, b = mine["status"], other["status"]
        if b >= 500 and 400 <= a < 500:
            continue                    # HSDS fails on this input; a 4xx is what we owe
        if a != b:
            out.append(f"{mine['step']}: status {a}, HSDS {b}")
            continue
        out += [f"{mine['step']}: {d}"
                for d in shape_differences(mine.get("json"), other.get("json"))]
    return out


def test_differences_are_found():
    ours = [{"step": "a", "status": 201, "json": {"id": "str", "layout": {}}},
            {"step": "b", "status": 400}, {"step": "c", "status": 200, "json": {"x": "int"}}]
    hsds = [{"step": "a", "status": 201, "json": {"id": "str"}},
            {"step": "b", "status": 500}, {"step": "c", "status": 200, "json": {"x": "str"}}]
    assert differences(ours, hsds) == ["c: .x: int vs HSDS str"]
    assert differences(ours, hsds[:1]) == ["b: HSDS did not get this far",
                                           "c: HSDS did not get this far"]
    hsds[0]["json"]["root"] = "str"
    ours[2]["json"]["y"] = "int"
    assert differences(ours, hsds) == ["a: .root only in HSDS's", "c: .x: int vs HSDS str",
                                       "c: .y only in ours"]
    ours[1]["status"] = 201
    assert differences(ours, hsds)[1] == "b: status 201, HSDS 500"


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="hsds_anchor.sh needs unshare as root")
def test_same_answers_as_hsds(tmp_path):
    if not (HSDS_VENV / "bin" / "hsds").exists():
        pytest.skip("no .venv-hsds (./testall.sh installs hsds==1.0.2 there)")
    folder = "/home/test_user1"
    cluster = start_cluster(tmp_path, cluster_env(tmp_path, "posix"))
    try:
        make_home(cluster.endpoint)
        ours = subprocess.run([sys.executable, str(PROBE), cluster.endpoint, folder,
                               str(tmp_path / "ours.json")],
                              capture_output=True, text=True, timeout=300)
    finally:
        cluster.stop()
    assert ours.returncode == 0, ours.stdout + ours.stderr

    env = {**os.environ, "ANCHOR_DIR": str(tmp_path / "anchor"), "HSDS_VENV": str(HSDS_VENV),
           "HSDS_DATA": str(tmp_path / "hsds_data"), "HSDS_DN_COUNT": "2"}
    start = subprocess.run(["bash", str(ANCHOR), "start"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert start.returncode == 0, start.stdout + start.stderr
    # HSDS answers /about before all its nodes are ready: 5xx until then
    home = ("import requests, time\n"
            "for path, owner in (('/home', None), ('/home/test_user1', 'test_user1')):\n"
            "    body = {'folder': 1, **({'owner': owner} if owner else {})}\n"
            "    for _ in range(60):\n"
            "        r = requests.put('http://127.0.0.1:5101/', params={'domain': path},\n"
            "                         auth=('admin', 'admin'), json=body, timeout=30)\n"
            "        if r.status_code < 500:\n"
            "            break\n"
            "        time.sleep(0.5)\n"
            "    assert r.status_code in (200, 201, 409), r.text\n")
    try:
        made = subprocess.run(["bash", str(ANCHOR), "exec", sys.executable, "-c", home],
                              env=env, capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stdout + made.stderr
        theirs = subprocess.run(["bash", str(ANCHOR), "exec", sys.executable, str(PROBE),
                                 "http://127.0.0.1:5101", folder, str(tmp_path / "hsds.json")],
                                env=env, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["bash", str(ANCHOR), "stop"], env=env, capture_output=True, timeout=300)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    found = differences(json.loads((tmp_path / "ours.json").read_text()),
                        json.loads((tmp_path / "hsds.json").read_text()))
    assert not found, "\n".join(found)
