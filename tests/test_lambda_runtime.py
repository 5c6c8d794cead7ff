"""awslambda/lambda_python.sh, the one place that finds the Lambda runtime (python3.12)
for serve_local.sh, build.sh, runall.sh --lambda-local and testall.sh: a python3.12 on
PATH that does not run (a pyenv shim for an inactive version exits 127) is passed over,
and with no python3.12 at all it fails saying what to install."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config

from conftest import REPO, make_bucket
from server.launch import free_ports

HELPER = REPO / "awslambda" / "lambda_python.sh"
ZIP = REPO / "dist" / "hslambda.zip"
# what build.sh puts into the zip: a zip older than any of them is rebuilt
SOURCES = [REPO / "awslambda" / "build.sh", REPO / "admin" / "config" / "config.yml",
           *(REPO / "server").rglob("*.py")]
CONSOLE_EVENT = {"key1": "value1", "key2": "value2", "key3": "value3"}


def hslambda_zip():
    """dist/hslambda.zip, built now if missing or older than what goes into it."""
    if not ZIP.exists() or ZIP.stat().st_mtime < max(p.stat().st_mtime for p in SOURCES):
        subprocess.run(["bash", str(REPO / "awslambda" / "build.sh"), "hslambda"], cwd=REPO,
                       check=True, capture_output=True, timeout=900,
                       env={**os.environ, "PIP": f"{sys.executable} -m pip"})
    return ZIP


def shim_dir(tmp_path):
    """A folder whose python3.12 exits 127, as pyenv's shim does for an inactive version."""
    folder = tmp_path / "shim"
    folder.mkdir()
    (folder / "python3.12").write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    (folder / "python3.12").chmod(0o755)
    return folder


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def base_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAMBDA_RUNTIME_PYTHON", "LAMBDA_VENV", "AWS_S3_GATEWAY", "ROOT_DIR")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_serve_local_passes_over_a_python312_that_exits_127(tmp_path, moto_endpoint):
    found = subprocess.run(["bash", str(HELPER), "--base"], env=base_env(),
                           capture_output=True, text=True, timeout=60)
    if found.returncode != 0:
        pytest.skip("no python3.12 here: " + found.stderr[-300:])
    zip_path = hslambda_zip()
    shim = shim_dir(tmp_path)
    venv = tmp_path / "venv-lambda312"      # as on a fresh clone: no venv yet
    make_bucket(moto_endpoint, "runtimetest")
    env = base_env(PATH=f"{shim}:{os.environ['PATH']}", LAMBDA_VENV=venv,
                   BUCKET_NAME="runtimetest", AWS_S3_GATEWAY=moto_endpoint,
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION="us-east-1")
    assert subprocess.run(["python3.12", "-c", ""], env=env).returncode == 127
    port = free_ports(1)
    log_path = tmp_path / "endpoint.log"
    with open(log_path, "w") as log:
        endpoint = subprocess.Popen(
            ["bash", str(REPO / "awslambda" / "serve_local.sh"), "--port", str(port),
             "--concurrency", "1", f"hslambda={zip_path}"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing",
                              config=Config(read_timeout=120, retries={"max_attempts": 0}))
        deadline = time.time() + 240            # the first run makes the venv (pip)
        while not listening(port):
            assert endpoint.poll() is None, log_path.read_text()
            assert time.time() < deadline, log_path.read_text()
            time.sleep(0.2)
        rsp = client.invoke(FunctionName="hslambda", Payload=json.dumps(CONSOLE_EVENT))
        answer = rsp["Payload"].read()
        assert "FunctionError" not in rsp, answer
        answer = json.loads(answer)
        assert answer["statusCode"] == 200 and answer["status_code"] == 200, answer
        assert f"runtime {venv}/bin/python" in log_path.read_text()
    finally:
        endpoint.terminate()
        endpoint.wait(10)


def test_no_python312_fails_saying_what_to_install(tmp_path):
    # PATH holds only the tools the helper needs and a python3.12 that exits 127;
    # no pyenv (PYENV_ROOT and HOME empty), no LAMBDA_RUNTIME_PYTHON
    tools = shim_dir(tmp_path)
    for tool in ("dirname", "ls", "sort", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    empty = tmp_path / "empty"
    empty.mkdir()
    venv = tmp_path / "venv-lambda312"
    env = {"PATH": str(tools), "HOME": str(empty), "PYENV_ROOT": str(empty),
           "LAMBDA_VENV": str(venv)}
    for args in ([], ["--base"]):
        got = subprocess.run([shutil.which("bash"), str(HELPER), *args], env=env,
                             capture_output=True, text=True, timeout=60)
        assert got.returncode != 0 and got.stdout == "", got
        assert "no python3.12 found" in got.stderr and "pyenv install 3.12" in got.stderr, got
        assert "LAMBDA_RUNTIME_PYTHON" in got.stderr
    assert not venv.exists()
    # LAMBDA_RUNTIME_PYTHON is the runtime as is, but only if it runs
    env["LAMBDA_RUNTIME_PYTHON"] = str(tools / "python3.12")
    got = subprocess.run([shutil.which("bash"), str(HELPER)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert got.returncode != 0 and "does not run" in got.stderr, got
    env["LAMBDA_RUNTIME_PYTHON"] = sys.executable
    got = subprocess.run([shutil.which("bash"), str(HELPER)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0 and got.stdout.strip() == sys.executable, got
