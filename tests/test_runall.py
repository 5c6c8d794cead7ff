"""./runall.sh and ./stopall.sh from a clean clone, as a new user runs them."""
import os
import shutil
import subprocess

import pytest
import requests

from conftest import REPO, free_ports


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_runall_and_stopall_from_a_clean_clone(tmp_path):
    clone = tmp_path / "h5cloud"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    base = free_ports(4)
    env = {k: v for k, v in os.environ.items()
           if k not in ("ROOT_DIR", "AWS_S3_GATEWAY", "PASSWORD_FILE", "GROUPS_FILE",
                        "BUCKET_NAME", "VIRTUAL_ENV", "RUN_MODE")}
    env.update(SN_PORT=str(base), DN_PORT=str(base + 1))
    run = subprocess.run(["./runall.sh", "--dn", "2"], cwd=clone, env=env, capture_output=True,
                         text=True, timeout=900)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        endpoint = f"http://127.0.0.1:{base}"
        assert endpoint in run.stdout
        assert f"grep serverless {clone}/run/sn.log" in run.stdout
        about = requests.get(endpoint + "/about", timeout=5).json()
        assert about["state"] == "READY" and about["node_count"] == 2
        for user in ("test_user1", "test_user2"):
            rsp = requests.get(endpoint + "/", params={"domain": f"/home/{user}"},
                               auth=(user, "test"), timeout=5)
            assert rsp.status_code == 200 and rsp.json()["owner"] == user
        rsp = requests.put(endpoint + "/", params={"domain": "/home/test_user1/x.h5"},
                           auth=("test_user1", "test"), timeout=5)
        assert rsp.status_code == 201
        assert (clone / "data" / "hsdstest" / "home" / "test_user1" / "x.h5").is_dir()
        # a second runall is harmless
        again = subprocess.run(["./runall.sh", "--dn", "2"], cwd=clone, env=env,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "already running" in again.stdout
        pids = [int(p.read_text()) for p in (clone / "run").glob("*.pid")]
        assert len(pids) == 3
    finally:
        stop = subprocess.run(["./stopall.sh"], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{base}/about", timeout=2)
