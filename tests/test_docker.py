"""Containers for real, on a running Docker engine driven through the Docker SDK:
`./runall.sh --docker --dn 2` and `./stopall.sh` from a fresh clone, exactly as a user
types them; h5pyd 1.0.0 and 0.24.0 through the container endpoint; a DN killed and
started again; two SNs on one DN set; the data surviving a stop and a new start; the
hslambda image's entry point answering the console's test event.

Where no engine answers, one is installed from Debian's packages and started (as root,
which CI is); the tests skip, saying why, only where that cannot be done.
"""
import http.server
import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
import types
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import REPO, run_h5pyd_client
from server.core.ids import node_index
from server.launch import free_ports

PROJECT = f"h5ct{uuid.uuid4().hex[:6]}"        # compose project: never a user's own
U1 = ("test_user1", "test")
BIN = {"Content-Type": "application/octet-stream"}
ACCEPT = {"Accept": "application/octet-stream"}
PACKAGES = ["docker.io", "docker-compose", "debootstrap"]


# ---- the engine ---------------------------------------------------------------

def _client():
    import docker
    client = docker.from_env(timeout=300)
    client.ping()
    return client


def ensure_engine():
    """(Docker SDK client, dockerd process started here or None, reason): an engine that
    runs, installing and starting one if need be; no client, and why, where impossible."""
    try:
        return _client(), None, ""
    except Exception as e:          # no engine (or no socket) yet
        first = str(e)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, None, (f"no Docker engine ({first[:120]}) and none can be installed "
                            "here (not root)")
    missing = [p for p, exe in zip(PACKAGES, ["dockerd", "docker-compose", "debootstrap"])
               if shutil.which(exe) is None]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        got = subprocess.run(["apt-get", "install", "-y", "-q", *missing],
                             capture_output=True, text=True, env=env, timeout=900)
        if got.returncode != 0:
            return None, None, "apt-get install docker.io failed: " + got.stderr[-300:]
    if shutil.which("dockerd") is None:
        return None, None, "dockerd is not installed"
    log = open("/tmp/h5cloud-dockerd.log", "ab")
    daemon = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            return _client(), daemon, ""
        except Exception as e:
            reason = str(e)
            time.sleep(0.5)
    daemon.terminate()
    return None, None, f"dockerd did not come up: {reason[:200]} (see /tmp/h5cloud-dockerd.log)"


@pytest.fixture(scope="module")
def engine():
    client, daemon, reason = ensure_engine()
    if client is None:
        print("test_docker skipped:", reason)
        pytest.skip(reason)
    if shutil.which("docker-compose") is None and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no compose (v1 docker-compose or the v2 plugin) and none installable")
    yield client
    client.close()
    if daemon is not None:          # started here: stopped here (images stay cached on disk)
        daemon.terminate()
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()


# ---- the clone and its cluster --------------------------------------------------

def run(clone, *args, env, timeout=900):
    return subprocess.run(list(args), cwd=clone, env=env, capture_output=True, text=True,
                          timeout=timeout)


def project_containers(client, service=None):
    labels = [f"com.docker.compose.project={PROJECT}"]
    if service:
        labels.append(f"com.docker.compose.service={service}")
    found = client.containers.list(all=True, filters={"label": labels})
    return sorted(found, key=lambda c: int(c.labels.get("com.docker.compose.container-number", 0)))


@pytest.fixture(scope="module")
def clone(engine, tmp_path_factory):
    """A fresh clone of this repository that reuses its .venv (the host-side helper
    python runall.sh needs); the image is built from the clone's own files."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    where = tmp_path_factory.mktemp("docker") / "h5cloud"
    subprocess.run(["git", "clone", "-q", str(REPO), str(where)], check=True)
    if (REPO / ".venv").is_dir():
        (where / ".venv").symlink_to(REPO / ".venv")
    port = free_ports(1)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "H5CLOUD_")) and k not in (
               "ROOT_DIR", "BUCKET_NAME", "RUN_MODE", "SN_PORT", "DN_PORT", "CONFIG_DIR",
               "VIRTUAL_ENV", "CONFIG_OVERRIDE_PATH", "PASSWORD_FILE", "GROUPS_FILE")}
    env.update(H5CLOUD_PROJECT=PROJECT, SN_PORT=str(port))
    yield types.SimpleNamespace(path=where, env=env, endpoint=f"http://127.0.0.1:{port}")
    run(where, "./stopall.sh", env=env)             # whatever a failed test left
    for c in project_containers(engine):
        c.remove(force=True)


@pytest.fixture(scope="module")
def cluster(engine, clone):
    start = time.perf_counter()
    up = run(clone.path, "./runall.sh", "--docker", "--dn", "2", env=clone.env)
    print(f"runall.sh --docker --dn 2: {time.perf_counter() - start:.1f} s to the first answer")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"endpoint: {clone.endpoint}" in up.stdout, up.stdout
    assert f"-p {PROJECT} -f admin/docker/docker-compose.yml logs sn" in up.stdout, up.stdout
    return clone


def put_domain(endpoint, domain):
    rsp = requests.put(endpoint + "/", params={"domain": domain}, auth=U1, timeout=30)
    assert rsp.status_code == 201, rsp.text
    return rsp.json()["root"]


def write_dataset(endpoint, domain, data, chunks, filters=()):
    root = put_domain(endpoint, domain)
    body = {"type": "H5T_STD_I32LE", "shape": list(data.shape),
            "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": list(chunks)},
                                   "filters": list(filters)},
            "link": {"id": root, "name": "values"}}
    rsp = requests.post(endpoint + "/datasets", params={"domain": domain}, json=body,
                        auth=U1, timeout=30)
    assert rsp.status_code == 201, rsp.text
    did = rsp.json()["id"]
    rsp = requests.put(f"{endpoint}/datasets/{did}/value", params={"domain": domain},
                       data=data.astype("<i4").tobytes(), headers=BIN, auth=U1, timeout=60)
    assert rsp.status_code == 200, rsp.text
    return did


def chunk_files(folder: Path, endpoint, domain, did) -> tuple:
    """(chunk files of the dataset in the bucket folder, how many its layout makes)."""
    rsp = requests.get(f"{endpoint}/datasets/{did}", params={"domain": domain}, auth=U1,
                       timeout=30).json()
    count = int(np.prod([-(-n // c) for n, c in zip(rsp["shape"]["dims"],
                                                     rsp["layout"]["dims"])]))
    tail = did.split("-", 3)[3]
    found = [p for p in (folder / "data" / "hsdstest").rglob(f"*{tail}*/*")
             if p.name.count("_") == len(rsp["shape"]["dims"]) - 1]
    return found, count


def read_dataset(endpoint, domain, did, shape):
    rsp = requests.get(f"{endpoint}/datasets/{did}/value", params={"domain": domain},
                       headers=ACCEPT, auth=U1, timeout=60)
    assert rsp.status_code == 200, rsp.text[:300]
    return np.frombuffer(rsp.content, "<i4").reshape(shape)


# ---- the tests -------------------------------------------------------------------

def test_containers_run_as_non_root_and_become_healthy(engine, cluster):
    sn = project_containers(engine, "sn")
    dns = project_containers(engine, "dn")
    assert len(sn) == 1 and len(dns) == 2
    for c in sn + dns:
        code, out = c.exec_run(["id", "-u"])
        assert code == 0 and out.decode().strip() != "0", (c.name, out)
    deadline = time.time() + 60
    while True:
        states = [c.attrs["State"].get("Health", {}).get("Status") for c in sn + dns]
        if all(s == "healthy" for s in states) or time.time() > deadline:
            break
        time.sleep(1)
        for c in sn + dns:
            c.reload()
    assert states == ["healthy"] * 3
    about = requests.get(cluster.endpoint + "/about", timeout=10).json()
    # found by the compose service's DNS name, in the containers' order
    assert about["state"] == "READY" and about["dn_ids"] == ["dn-001", "dn-002"]
    assert [u.split("//")[1].split(".")[0] for u in about["dn_urls"]] == \
        [c.name for c in dns], about["dn_urls"]


@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_h5pyd_writes_and_reads_through_the_containers(cluster, client):
    # the dataset scenario: every kind of dataset, gzip (deflate) among them
    run_h5pyd_client(cluster, client, "h5pyd_datasets.py")


def dirty_count(dn) -> int:
    """Objects a DN container holds that storage has not got yet (its /health)."""
    code, out = dn.exec_run(["python", "-c", "import json, urllib.request as u; print(json.load("
                             "u.urlopen('http://127.0.0.1:6101/health'))['dirty'])"])
    assert code == 0, out
    return int(out)


def owner(domain: str) -> int:
    """Index of the DN that owns a domain's document (HSDS's routing, bucket hsdstest)."""
    return node_index(f"hsdstest{domain}", 2)


def test_a_killed_dn_answers_503_for_its_objects_and_serves_again(engine, cluster):
    base = cluster.endpoint
    domains = [f"/home/test_user1/kill{i}.h5" for i in range(8)]
    owners = [owner(d) for d in domains]
    assert set(owners) == {0, 1}
    data = np.arange(120 * 80, dtype="<i4").reshape(120, 80)
    kept = next(d for d, o in zip(domains, owners) if o == 0)
    did = write_dataset(base, kept, data, (30, 40), [{"class": "H5Z_FILTER_DEFLATE",
                                                       "id": 1, "level": 6}])
    for d in domains:
        if d != kept:
            put_domain(base, d)
    # flushed: no DN holds anything dirty, and every chunk is a file in the bucket folder
    deadline = time.time() + 30
    while sum(dirty_count(c) for c in project_containers(engine, "dn")) or \
            len((found := chunk_files(cluster.path, base, kept, did))[0]) < found[1]:
        assert time.time() < deadline, "the data was not flushed within 30 s"
        time.sleep(0.5)

    dn1 = project_containers(engine, "dn")[0]
    dn1.kill()

    def statuses():
        return [requests.get(base + "/", params={"domain": d}, auth=U1,
                             timeout=30).status_code for d in domains]
    deadline = time.time() + 15
    while (got := statuses()) != [503 if o == 0 else 200 for o in owners]:
        assert time.time() < deadline, got
        time.sleep(0.5)
    slowest = 0.0
    for d in domains:
        t0 = time.perf_counter()
        requests.get(base + "/", params={"domain": d}, auth=U1, timeout=30)
        slowest = max(slowest, time.perf_counter() - t0)
    print(f"with dn-001 down: slowest answer {slowest * 1000:.0f} ms")
    health = requests.get(base + "/health", timeout=10).json()
    assert len(health["dn_down"]) == 1

    dn1.start()
    deadline = time.time() + 60
    while statuses() != [200] * len(domains):
        assert time.time() < deadline, "dn-001 did not serve again within 60 s"
        time.sleep(0.5)
    assert np.array_equal(read_dataset(base, kept, did, data.shape), data)


def test_two_sns_serve_the_same_domains(engine, cluster):
    first = project_containers(engine, "sn")[0]
    network = next(iter(first.attrs["NetworkSettings"]["Networks"]))
    port = free_ports(1)
    second = engine.containers.run(
        first.image.id, command=["python", "-m", "server.sn.main"], detach=True,
        name=f"{PROJECT}_sn_extra", environment=first.attrs["Config"]["Env"],
        user=first.attrs["Config"]["User"], network=network,
        volumes=first.attrs["HostConfig"]["Binds"],
        ports={"5101/tcp": ("127.0.0.1", port)})
    other = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(other + "/about", timeout=5).json()["state"] == "READY":
                    break
            except (requests.RequestException, ValueError):
                pass
            assert time.time() < deadline, second.logs()[-2000:]
            time.sleep(0.5)
        ours = requests.get(cluster.endpoint + "/about", timeout=5).json()
        theirs = requests.get(other + "/about", timeout=5).json()
        assert theirs["dn_urls"] == ours["dn_urls"]
        data = np.random.default_rng(5).integers(0, 1000, (64, 50)).astype("<i4")
        domain = "/home/test_user1/two_sns.h5"
        did = write_dataset(cluster.endpoint, domain, data, (16, 50))
        assert np.array_equal(read_dataset(other, domain, did, data.shape), data)
        # and back: a change made through the second is seen by the first
        data[3] = -1
        rsp = requests.put(f"{other}/datasets/{did}/value", params={"domain": domain,
                           "select": "[3:4,:]"}, data=data[3:4].tobytes(), headers=BIN,
                           auth=U1, timeout=30)
        assert rsp.status_code == 200, rsp.text
        assert np.array_equal(read_dataset(cluster.endpoint, domain, did, data.shape), data)
    finally:
        second.remove(force=True)


def test_stopall_leaves_nothing_and_runall_serves_the_data_again(engine, cluster):
    base = cluster.endpoint
    data = np.arange(100 * 100, dtype="<i4").reshape(100, 100) * 3
    domain = "/home/test_user1/survives.h5"
    # written just before the stop: the DNs flush it on SIGTERM
    did = write_dataset(base, domain, data, (50, 50))
    stop = run(cluster.path, "./stopall.sh", env=cluster.env)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert project_containers(engine) == []
    up = run(cluster.path, "./runall.sh", "--docker", "--dn", "2", env=cluster.env)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        found, count = chunk_files(cluster.path, base, domain, did)
        assert len(found) == count >= 1, found
        assert np.array_equal(read_dataset(base, domain, did, data.shape), data)
    finally:
        stop = run(cluster.path, "./stopall.sh", env=cluster.env)
    assert stop.returncode == 0 and project_containers(engine) == []


def test_lambda_local_offloads_from_the_containers(engine, clone):
    """--lambda-local with containers: moto and the local Invoke endpoint on this host,
    reached by the SN container at Docker's address here; the serverless line is in the
    SN container's log."""
    lambda_venv = REPO / ".venv-lambda312"
    if not (lambda_venv / "bin" / "python").exists():
        pytest.skip("no .venv-lambda312 (./testall.sh makes it where python3.12 exists)")
    from test_lambda_local import built_zip
    (clone.path / "dist").mkdir(exist_ok=True)
    shutil.copyfile(built_zip(), clone.path / "dist" / "chunk_read.zip")
    if not (clone.path / ".venv-lambda312").exists():
        (clone.path / ".venv-lambda312").symlink_to(lambda_venv)
    # small chunks, so a 400x500 dataset makes 400 of them (override.yml is mounted)
    (clone.path / "admin" / "config" / "override.yml").write_text("min_chunk_size: 1k\n")
    s3_port = free_ports(2)             # and the next one for the Invoke endpoint
    lambda_port = s3_port + 1
    env = {**clone.env, "S3_PORT": str(s3_port), "LAMBDA_PORT": str(lambda_port),
           "AWS_LAMBDA_OFFLOAD": "always"}
    up = run(clone.path, "./runall.sh", "--docker", "--dn", "2", "--lambda-local", env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "logs sn | grep serverless" in up.stdout
        base, domain = clone.endpoint, "/home/test_user1/offload.h5"
        data = np.random.default_rng(2).integers(-9999, 9999, (400, 500)).astype("<i4")
        did = write_dataset(base, domain, data, (20, 25))

        def offloaded():
            logs = run(clone.path, "admin/docker/compose.sh", "logs", "sn", env=env).stdout
            return [ln for ln in logs.splitlines() if "serverless" in ln and did in ln]
        deadline = time.time() + 120
        while not offloaded():
            assert time.time() < deadline, "no read was offloaded within 120 s"
            assert np.array_equal(read_dataset(base, domain, did, data.shape), data)
            time.sleep(0.5)
        assert "chunks=400" in offloaded()[0] and "fallback=0" in offloaded()[0]
    finally:
        stop = run(clone.path, "./stopall.sh", env=env)
        (clone.path / "admin" / "config" / "override.yml").unlink()
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert project_containers(engine) == [] and not list((clone.path / "run").glob("*.pid"))


def host_address(engine) -> str:
    """This machine's address on Docker's default bridge (as runall.sh finds it)."""
    config = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


# ---- the hslambda image -----------------------------------------------------------

class RuntimeApi(http.server.ThreadingHTTPServer):
    """Just enough of the Lambda Runtime API for one invocation: the next event, then
    the function's answer (or error)."""

    def __init__(self, address, event):
        self.event, self.answer, self.done = event, None, threading.Event()
        self.handed = False
        super().__init__(address, RuntimeHandler)


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        api = self.server
        if not self.path.endswith("/runtime/invocation/next"):
            return self._reply(404)
        if api.handed:                  # one event only: hold the runtime until stopped
            api.done.wait(120)
            return self._reply(500)
        api.handed = True
        deadline = str(int(time.time() * 1000) + 60_000)
        # every header the runtime client reads (awslambdaric crashes on a missing one)
        self._reply(200, json.dumps(api.event).encode(), [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", "req-1"),
            ("Lambda-Runtime-Client-Context", ""), ("Lambda-Runtime-Cognito-Identity", ""),
            ("Lambda-Runtime-Deadline-Ms", deadline),
            ("Lambda-Runtime-Invoked-Function-Arn",
             "arn:aws:lambda:us-east-1:000000000000:function:hslambda"),
            ("Lambda-Runtime-Trace-Id", "Root=1-0-0")])

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.answer = (self.path, body)
        self._reply(202)
        self.server.done.set()


def test_lambda_image_answers_the_console_test_event(engine, clone):
    build = run(clone.path, "./lambda_build.sh", f"{PROJECT}-hslambda:test", env=clone.env)
    assert build.returncode == 0, build.stdout + build.stderr
    gateway = host_address(engine)
    api = RuntimeApi((gateway, 0), {"key1": "value1", "key2": "value2", "key3": "value3"})
    threading.Thread(target=api.serve_forever, daemon=True).start()
    container = engine.containers.run(
        f"{PROJECT}-hslambda:test", detach=True, environment={
            "AWS_LAMBDA_RUNTIME_API": f"{gateway}:{api.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "hslambda", "AWS_REGION": "us-east-1",
            "ROOT_DIR": "/tmp", "BUCKET_NAME": "hsdstest"})
    try:
        assert api.done.wait(120), container.logs()[-3000:].decode()
        path, body = api.answer
        assert path == "/2018-06-01/runtime/invocation/req-1/response", (path, body[:500])
        answer = json.loads(body)
        assert answer["statusCode"] == 200, answer
        assert answer["body"]["state"] == "READY"
    finally:
        container.remove(force=True)
        api.shutdown()
        engine.images.remove(f"{PROJECT}-hslambda:test", force=True)


def test_base_image_is_made_once(engine):
    """The second call finds the local base (or the official image) at once."""
    first = subprocess.run([str(REPO / "admin/docker/base-image.sh")], capture_output=True,
                           text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    t0 = time.perf_counter()
    again = subprocess.run([str(REPO / "admin/docker/base-image.sh")], capture_output=True,
                           text=True, timeout=60)
    print(f"base image {again.stdout.strip()}: {time.perf_counter() - t0:.2f} s when cached")
    assert again.stdout == first.stdout and "debootstrap" not in again.stderr
    image = engine.images.get(again.stdout.strip())
    assert image.attrs["Config"]["Env"] and "python" in " ".join(image.attrs["Config"]["Cmd"])
    code = engine.containers.run(again.stdout.strip(), ["python", "-c", "import ssl, venv"],
                                 remove=True)
    assert code == b""
