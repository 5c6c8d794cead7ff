"""./runall.sh --lambda-local and ./stopall.sh from a clean clone, as a new user runs them:
moto's S3 server, the built chunk_read zip behind the local Invoke endpoint (python3.12
workers), and an SN + 4 DNs that offload a big read to it; stopall ends all of it."""
import dataclasses
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests

from conftest import REPO
from server.config import Settings
from server.launch import free_ports

U1 = ("test_user1", "test")
ZIP = REPO / "dist" / "chunk_read.zip"
LAMBDA_VENV = REPO / ".venv-lambda312"
PROCESSES = {"sn", "dn-001", "dn-002", "dn-003", "dn-004", "lambda", "moto"}


def built_zip():
    """dist/chunk_read.zip of this repository, built now if missing (skips if it can't be)."""
    if not ZIP.exists():
        build = subprocess.run(["bash", str(REPO / "awslambda" / "build.sh")], cwd=REPO,
                               env={**os.environ, "PIP": f"{sys.executable} -m pip"},
                               capture_output=True, text=True, timeout=600)
        if build.returncode != 0 or not ZIP.exists():
            pytest.skip("dist/chunk_read.zip can not be built here: " + build.stderr[-500:])
    return ZIP


def new_user_env(ports: dict) -> dict:
    """The caller's environment without any h5cloud setting (a new user has none set),
    plus free ports and small chunks (MIN_CHUNK_SIZE) so 400 chunks stay small."""
    ours = {f.name.upper() for f in dataclasses.fields(Settings)}
    env = {k: v for k, v in os.environ.items()
           if k not in ours and not k.startswith("AWS_")
           and k not in ("VIRTUAL_ENV", "RUN_MODE", "S3_PORT", "LAMBDA_PORT", "CONFIG_DIR",
                         "CONFIG_OVERRIDE_PATH", "LAMBDA_RUNTIME_PYTHON")}
    env.update({k: str(v) for k, v in ports.items()}, MIN_CHUNK_SIZE="1k")
    env["AWS_LAMBDA_OFFLOAD"] = "always"    # offload whatever the model would pick
    return env


def children(pid: int) -> list:
    """Pids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts as exited)."""
    try:
        return open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_runall_lambda_local_offloads_a_big_read_and_stopall_ends_it(tmp_path):
    if not (LAMBDA_VENV / "bin" / "python").exists():
        pytest.skip("no .venv-lambda312 (./testall.sh makes it where python3.12 exists)")
    zip_path = built_zip()
    clone = tmp_path / "h5cloud"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    # To keep this fast the clone reuses what runall.sh would otherwise make: it keeps a
    # .venv whose python imports server, aiohttp, aiobotocore, numpy, yaml (and moto,
    # boto3), a .venv-lambda312 whose python imports boto3, and an existing
    # dist/chunk_read.zip. This repository's .venv has h5cloud installed editable, pointing
    # at this repository's server/ package; but runall.sh and server.launch run
    # `python -m server...` in the clone's folder, which comes first on sys.path, so the
    # clone's own scripts and server code are what run (asserted below).
    if (REPO / ".venv").is_dir():
        (clone / ".venv").symlink_to(REPO / ".venv")
    (clone / ".venv-lambda312").symlink_to(LAMBDA_VENV)
    (clone / "dist").mkdir()
    shutil.copyfile(zip_path, clone / "dist" / "chunk_read.zip")
    base = free_ports(7)
    ports = {"SN_PORT": base, "DN_PORT": base + 1, "S3_PORT": base + 5, "LAMBDA_PORT": base + 6}
    every_port = [base + i for i in range(7)]       # SN, 4 DNs, S3, Invoke endpoint
    env = new_user_env(ports)
    endpoint = f"http://127.0.0.1:{base}"

    run = subprocess.run(["./runall.sh", "--lambda-local"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    pids, workers = {}, []
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"endpoint: {endpoint}" in run.stdout, run.stdout
        assert f"grep serverless {clone}/run/sn.log" in run.stdout
        pids = {p.stem: int(p.read_text()) for p in (clone / "run").glob("*.pid")}
        assert set(pids) == PROCESSES, pids
        where = subprocess.run([".venv/bin/python", "-c", "import server; print(server.__file__)"],
                               cwd=clone, capture_output=True, text=True, timeout=60)
        assert where.stdout.strip() == str(clone / "server" / "__init__.py"), where

        about = requests.get(endpoint + "/about", timeout=10).json()
        assert about["state"] == "READY" and about["node_count"] == 4
        params = {"domain": "/home/test_user1/lambda_local.h5"}
        rsp = requests.put(endpoint + "/", params=params, auth=U1, timeout=10)
        assert rsp.status_code == 201, rsp.text
        body = {"type": "H5T_STD_I32LE", "shape": [400, 500],
                "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [20, 25]}}}
        rsp = requests.post(endpoint + "/datasets", params=params, auth=U1, json=body,
                            timeout=10)
        assert rsp.status_code == 201, rsp.text
        did = rsp.json()["id"]
        # MIN_CHUNK_SIZE reached the SN: the 2000-byte chunks were kept (400 of them)
        layout = requests.get(f"{endpoint}/datasets/{did}", params=params, auth=U1,
                              timeout=10).json()["layout"]
        assert layout["dims"] == [20, 25]
        rng = np.random.default_rng(11)
        arr = rng.integers(-2**31, 2**31 - 1, (400, 500), dtype="<i4")
        url = f"{endpoint}/datasets/{did}/value"
        requests.put(url, params=params, auth=U1, data=arr.tobytes(), timeout=60, headers={
            "Content-Type": "application/octet-stream"}).raise_for_status()

        def read(select=None):
            query = {**params, "select": select} if select else params
            got = requests.get(url, params=query, auth=U1, timeout=60,
                               headers={"Accept": "application/octet-stream"})
            assert got.status_code == 200, got.text[:300]
            return np.frombuffer(got.content, "<i4")

        def offloaded():
            return [ln for ln in (clone / "run" / "sn.log").read_text().splitlines()
                    if "serverless" in ln and did in ln]

        # the read is offloaded once the DNs have written the chunks to S3 (the dataset is
        # clean); until then the DNs answer. Each read returns what was written. The first
        # offloaded read starts the workers (they import numpy): several seconds.
        deadline = time.time() + 120
        while not offloaded():
            assert time.time() < deadline, "no read was offloaded within 120 s"
            assert np.array_equal(read().reshape(400, 500), arr)
            time.sleep(0.2)
        first = offloaded()
        assert len(first) == 1 and "chunks=400" in first[0], first
        warnings = [ln for ln in (clone / "run" / "sn.log").read_text().splitlines()
                    if "WARNING" in ln]
        assert "fallback=0" in first[0], (first[0], len(warnings), warnings[:1])
        # a hyperslab over most chunks, on warm workers
        got = read("[7:393,3:498:2]").reshape(386, 248)
        assert np.array_equal(got, arr[7:393, 3:498:2])
        lines = offloaded()
        assert len(lines) == 2 and "chunks=400" in lines[1] and "fallback=0" in lines[1], lines
        # the chunks are objects in moto's S3, not files
        import boto3
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{ports['S3_PORT']}",
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="hsdstest") for o in page.get("Contents", [])]
        tail = did.split("-", 3)[3]          # d-<8>-<8>-<tail>: chunk keys .../<tail>/i_j
        chunks = [k for k in keys if f"/{tail}/" in k
                  and re.fullmatch(r"\d+_\d+", k.rsplit("/", 1)[1])]
        assert len(chunks) == 400, keys[:20]
        assert not (clone / "data").exists()
        workers = children(pids["lambda"])
        assert workers, "the Invoke endpoint has no worker processes"
    finally:
        stop = subprocess.run(["./stopall.sh"], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=600)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert list((clone / "run").glob("*.pid")) == []
    still = [name for name, pid in pids.items() if not gone(pid)] + \
        [f"worker {pid}" for pid in workers if not gone(pid)]
    assert still == [], still
    assert [p for p in every_port if answers(p)] == []
