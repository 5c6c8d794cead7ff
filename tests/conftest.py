"""Shared fixtures: free loopback ports, moto's S3 server, and real SN+DN clusters."""
import os
import random
import shutil
from pathlib import Path

import pytest

from server.launch import free_ports

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FIXTURE = SHARED / "fixtures" / "hsds-1.0.2"
H5PYD_024 = REPO / ".venv-h5pyd024" / "bin" / "python"
CLIENTS = Path(__file__).resolve().parent / "clients"
PASSWORDS = "admin:admin\ntest_user1:test\ntest_user2:test\n"
GROUPS = "test_group: test_user1 test_user2\n"


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3 server on a loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")   # for deploy.sh
    port = free_ports(1)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    yield f"http://127.0.0.1:{port}"
    server.stop()


def make_bucket(endpoint: str, name: str):
    import boto3
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        s3.create_bucket(Bucket=name)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    return s3


def write_auth_files(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passwd.txt").write_text(PASSWORDS)
    (folder / "groups.txt").write_text(GROUPS)
    return {"PASSWORD_FILE": str(folder / "passwd.txt"),
            "GROUPS_FILE": str(folder / "groups.txt")}


def cluster_env(tmp: Path, backend: str, moto: str | None = None, bucket="hsdstest",
                root_dir: Path | None = None, **extra) -> dict:
    """Environment for a cluster on fresh ports over POSIX (tmp/data) or S3 (moto)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROOT_DIR", "AWS_S3_GATEWAY")}
    env.update(write_auth_files(tmp / "config"))
    base = free_ports(8)
    env.update(SN_PORT=str(base), DN_PORT=str(base + 1), BUCKET_NAME=bucket,
               LOG_LEVEL="INFO", S3_SYNC_INTERVAL="0.2", S3_AGE_TIME="0.5")
    if backend == "posix":
        root = root_dir or tmp / "data"
        (root / bucket).mkdir(parents=True, exist_ok=True)
        env["ROOT_DIR"] = str(root)
    else:
        make_bucket(moto, bucket)
        env.update(AWS_S3_GATEWAY=moto, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_cluster(tmp: Path, env: dict, dn_count: int = 2):
    from server.launch import Cluster
    return Cluster(tmp / "run", dn_count, env).start()


def make_home(endpoint: str, users=("test_user1", "test_user2")):
    """Create /home and /home/<user> as admin (what runall.sh does on first run)."""
    from server.launch import make_home_folders
    make_home_folders(endpoint, "admin", "admin", users)


@pytest.fixture(scope="module", params=["posix", "s3"])
def server(request, tmp_path_factory):
    """A running SN + 2 DNs with home folders, on POSIX and on S3 (moto)."""
    tmp = tmp_path_factory.mktemp(f"cluster-{request.param}")
    moto = request.getfixturevalue("moto_endpoint") if request.param == "s3" else None
    bucket = f"b{random.randrange(1 << 30):x}"
    env = cluster_env(tmp, request.param, moto, bucket=bucket)
    cluster = start_cluster(tmp, env)
    make_home(cluster.endpoint)
    cluster.backend = request.param
    cluster.bucket = bucket
    cluster.env = env
    yield cluster
    cluster.stop()


def copy_fixture(dest: Path) -> Path:
    """A private, writable copy of the HSDS-written bucket under dest (a ROOT_DIR);
    the shared one is read-only and never changed."""
    src = FIXTURE / "hsdstest"
    if not src.is_dir():
        pytest.skip("shared fixture not present")
    shutil.copytree(src, dest / "hsdstest", copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(dest):
        os.chmod(folder, 0o755)
    return dest


def run_h5pyd_client(server, client: str, script: str):
    """Run tests/clients/<script> ENDPOINT FOLDER with h5pyd 1.0.0 (this venv) or 0.24.0
    (.venv-h5pyd024) in a fresh folder of test_user1; returns (python, folder, stdout)."""
    import subprocess
    import sys
    import uuid

    import requests
    python = sys.executable if client == "h5pyd-1.0.0" else str(H5PYD_024)
    if not Path(python).exists():
        pytest.skip("h5pyd 0.24.0 venv missing (./testall.sh creates it)")
    folder = f"/home/test_user1/c{uuid.uuid4().hex[:8]}"
    rsp = requests.put(server.endpoint + "/", params={"domain": folder}, json={"folder": True},
                       auth=("test_user1", "test"), timeout=10)
    assert rsp.status_code == 201
    proc = subprocess.run([python, str(CLIENTS / script), server.endpoint, folder],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all ok" in proc.stdout
    return python, folder, proc.stdout
