"""Serverless chunk reads end to end: SN + DNs over S3 (moto), the built chunk_read zip
behind the local Invoke endpoint; offloaded reads return the DN path's bytes, log a
`serverless` line, and fall back to the DNs when Lambda fails."""
import os
import subprocess
import time

import numpy as np
import pytest
import requests

from conftest import REPO, cluster_env, make_home, start_cluster
from server.config import Settings
from server.launch import free_ports
from server.offload.cost import CostModel

U1 = ("test_user1", "test")
ZIP = REPO / "dist" / "chunk_read.zip"
LAMBDA_PY = REPO / ".venv-lambda312" / "bin" / "python"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, moto_endpoint):
    if not LAMBDA_PY.exists():
        pytest.skip("no .venv-lambda312 (./testall.sh makes it where python3.12 exists)")
    if not ZIP.exists():
        subprocess.run(["bash", str(REPO / "awslambda" / "build.sh")], cwd=REPO, check=True,
                       capture_output=True, timeout=600)
    tmp = tmp_path_factory.mktemp("serverless")
    port = free_ports(1)
    aws = {"AWS_S3_GATEWAY": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    endpoint = subprocess.Popen(["bash", str(REPO / "awslambda" / "serve_local.sh"), "--port",
                                 str(port), "--concurrency", "8", f"chunk_read={ZIP}"],
                                env={**os.environ, **aws}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    env = cluster_env(tmp, "s3", moto_endpoint, bucket="lambdabucket",
                      AWS_LAMBDA_CHUNKREAD_FUNCTION="chunk_read",
                      AWS_LAMBDA_GATEWAY=f"http://127.0.0.1:{port}",
                      AWS_LAMBDA_THRESHOLD=1, AWS_LAMBDA_MAX_INVOKE=8, MIN_CHUNK_SIZE="1k",
                      # the mechanics of offloading, whatever the model would pick
                      AWS_LAMBDA_OFFLOAD="always")
    cluster = start_cluster(tmp, env)
    make_home(cluster.endpoint)
    yield cluster, endpoint
    cluster.stop()
    endpoint.terminate()
    endpoint.wait(10)


def new_dataset(cluster, domain):
    """A new domain with a 400x500 int32 dataset in 400 chunks: (base, params, id)."""
    base, params = cluster.endpoint, {"domain": domain}
    assert requests.put(base + "/", params=params, auth=U1, timeout=10).status_code == 201
    body = {"type": "H5T_STD_I32LE", "shape": [400, 500],
            "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [20, 25]}}}
    did = requests.post(base + "/datasets", params=params, auth=U1, json=body,
                        timeout=10).json()["id"]
    return base, params, did


def serverless_lines(cluster):
    return [ln for ln in cluster.sn_log.read_text().splitlines() if "serverless" in ln]


def test_offloaded_query_matches(stack):
    cluster, endpoint = stack
    if endpoint.poll() is not None:
        pytest.skip("the shared endpoint was stopped by the test before")
    base, params = cluster.endpoint, {"domain": "/home/test_user1/lambda_query.h5"}
    assert requests.put(base + "/", params=params, auth=U1, timeout=10).status_code == 201
    ctype = {"class": "H5T_COMPOUND", "fields": [{"name": "id", "type": "H5T_STD_I32LE"},
                                                 {"name": "temp", "type": "H5T_IEEE_F32LE"},
                                                 {"name": "tag", "type": "H5T_STD_I32LE"}]}
    dt = np.dtype([("id", "<i4"), ("temp", "<f4"), ("tag", "<i4")])
    rows = np.zeros(40000, dt)
    rows["id"] = np.arange(40000)
    rows["temp"] = (np.arange(40000) * 7919 % 1000) / 10.0
    body = {"type": ctype, "shape": [40000],
            "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [100]}}}
    did = requests.post(base + "/datasets", params=params, auth=U1, json=body,
                        timeout=10).json()["id"]
    url = f"{base}/datasets/{did}/value"
    requests.put(url, params=params, auth=U1, data=rows.tobytes(), timeout=30, headers={
        "Content-Type": "application/octet-stream"}).raise_for_status()
    requests.put(base + "/", params=params, auth=U1, json={"flush": 1}, timeout=30)
    got = requests.get(url, params={**params, "query": "temp > 95.0"}, auth=U1,
                       timeout=60).json()["value"]
    want = rows[rows["temp"] > 95.0]
    assert [r[0] for r in got] == want["id"].tolist()
    assert [r[2] for r in got] == pytest.approx(want["temp"].tolist())
    limited = requests.get(url, params={**params, "query": "temp > 95.0", "Limit": 7},
                           auth=U1, timeout=60).json()["value"]
    assert [r[0] for r in limited] == want["id"][:7].tolist()
    lines = [ln for ln in serverless_lines(cluster) if "serverless query" in ln]
    assert len(lines) == 2 and did in lines[0] and "chunks=400" in lines[0]


def test_a_streamed_read_is_offloaded_once(stack):
    """A binary read bigger than one streamed page: one plan for all its chunks, pages
    read through Lambda, one `serverless` line for the request, the right bytes."""
    cluster, endpoint = stack
    if endpoint.poll() is not None:
        pytest.skip("the shared endpoint was stopped by the test before")
    base, params = cluster.endpoint, {"domain": "/home/test_user1/lambda_stream.h5"}
    assert requests.put(base + "/", params=params, auth=U1, timeout=10).status_code == 201
    body = {"type": "H5T_STD_I32LE", "shape": [2200, 1024],
            "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [22, 512]}}}
    did = requests.post(base + "/datasets", params=params, auth=U1, json=body,
                        timeout=10).json()["id"]
    data = np.arange(2200 * 1024, dtype="<i4").reshape(2200, 1024) * 3     # 8.6 MiB
    url = f"{base}/datasets/{did}/value"
    requests.put(url, params=params, auth=U1, data=data.tobytes(), timeout=60,
                 headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    requests.put(base + "/", params=params, auth=U1, json={"flush": 1},
                 timeout=30).raise_for_status()
    got = requests.get(url, params=params, auth=U1, timeout=120,
                       headers={"Accept": "application/octet-stream"})
    assert got.status_code == 200
    assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(2200, 1024), data)
    lines = [ln for ln in serverless_lines(cluster) if did in ln]
    assert len(lines) == 1, lines
    assert "chunks=200" in lines[0] and "fallback=0" in lines[0], lines
    # GET /info counts offloaded requests, chunks, invocations and their price
    info = requests.get(base + "/info", timeout=10).json()["serverless"]
    assert info["function"] == "chunk_read" and info["read_chunks"] >= 200
    assert info["invocations"] >= 8 and 0 < info["estimated_cost_usd"] < 0.01


def test_auto_mode_measures_both_plans_and_writes_emf_records(stack, tmp_path, moto_endpoint):
    """AWS_LAMBDA_OFFLOAD=auto with a high exploration share: reads go both ways and all
    return the written values; the model's samples and weights move (GET /info), and
    each decision is one EMF record on the SN's log, with both estimates."""
    cluster, endpoint = stack
    if endpoint.poll() is not None:
        pytest.skip("the shared endpoint was stopped by the test before")
    import json
    port = free_ports(4)                # its own SN and DNs beside the shared cluster's
    env = {**cluster.env, "AWS_LAMBDA_OFFLOAD": "auto", "AWS_LAMBDA_EXPLORE": "0.5",
           "CLOUDWATCH_EMF": "1", "SN_PORT": str(port), "DN_PORT": str(port + 1)}
    auto = start_cluster(tmp_path, env)
    try:
        base, params = auto.endpoint, {"domain": "/home/test_user1/lambda_auto.h5"}
        make_home(base)
        assert requests.put(base + "/", params=params, auth=U1, timeout=10).status_code == 201
        body = {"type": "H5T_STD_I32LE", "shape": [400, 500],
                "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [20, 25]},
                                       "filters": [{"class": "H5Z_FILTER_DEFLATE", "id": 1,
                                                    "level": 4}]}}
        did = requests.post(base + "/datasets", params=params, auth=U1, json=body,
                            timeout=10).json()["id"]
        arr = (np.arange(400 * 500, dtype="<i4") % 977).reshape(400, 500)
        url = f"{base}/datasets/{did}/value"
        requests.put(url, params=params, auth=U1, data=arr.tobytes(), timeout=30, headers={
            "Content-Type": "application/octet-stream"}).raise_for_status()
        requests.put(base + "/", params=params, auth=U1, json={"flush": 1}, timeout=30)
        time.sleep(2.5)              # the SN's own write marks settle
        for _ in range(6):           # explore 0.5: every other one the plan not picked
            got = requests.get(url, params={**params, "select": "[0:400:3,1:500:4]"}, auth=U1,
                               headers={"Accept": "application/octet-stream"}, timeout=60)
            assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(134, 125),
                                  arr[0:400:3, 1:500:4])
        model = requests.get(base + "/info", timeout=10).json()["serverless"]["model"]
        assert model["mode"] == "auto" and model["samples"]["dn"] > 0 \
            and model["samples"]["lambda"] > 0, model
        prior = CostModel(Settings()).info()["weights"]      # where the weights start
        assert model["weights"]["dn"] != prior["dn"] and \
            model["weights"]["lambda"] != prior["lambda"], model
        records = [json.loads(ln) for ln in auto.sn_log.read_text().splitlines()
                   if ln.startswith("{") and '"_aws"' in ln]
        mine = [r for r in records if r["dataset"] == did]
        assert len(mine) == 6 and sorted(r["Plan"] for r in mine) == ["dn"] * 3 + ["lambda"] * 3
        assert all(r["EstDnMs"] > 0 and r["EstLambdaMs"] > 0 and r["MeasuredMs"] > 0
                   for r in mine)
        lines = [ln for ln in serverless_lines(auto) if did in ln]
        assert len(lines) == sum(r["Plan"] == "lambda" for r in mine)
        assert all("plan=lambda" in ln and "codec=deflate" in ln for ln in lines)
    finally:
        auto.stop()


def test_a_write_then_an_offloaded_read_returns_the_written_data(stack):
    """A read sent the moment a write is acknowledged, with a selection that is offloaded
    when the dataset is clean, returns the new values, not the older ones still in S3;
    once the write is stored, reads go to Lambda again and return the new values."""
    cluster, endpoint = stack
    if endpoint.poll() is not None:
        pytest.skip("the shared endpoint was stopped by the test before")
    base, params, did = new_dataset(cluster, "/home/test_user1/lambda_rewrite.h5")
    binary = {"Content-Type": "application/octet-stream"}
    accept = {"Accept": "application/octet-stream"}
    url = f"{base}/datasets/{did}/value"
    mine = lambda: [ln for ln in serverless_lines(cluster) if did in ln]    # noqa: E731

    def read_all():
        got = requests.get(url, params=params, auth=U1, headers=accept, timeout=60)
        assert got.status_code == 200, got.text[:300]
        return np.frombuffer(got.content, "<i4").reshape(400, 500)

    old = np.arange(400 * 500, dtype="<i4").reshape(400, 500) + 1
    requests.put(url, params=params, auth=U1, data=old.tobytes(), headers=binary,
                 timeout=30).raise_for_status()
    requests.put(base + "/", params=params, auth=U1, json={"flush": 1},
                 timeout=30).raise_for_status()
    # the dataset is clean and all 400 chunks are in S3: a whole read goes to Lambda
    assert np.array_equal(read_all(), old)
    lines = mine()
    assert len(lines) == 1 and "chunks=400" in lines[0] and "fallback=0" in lines[0], lines

    # overwrite 192 of the chunks (16 x 12, most of them in part) and read at once
    new = old.copy()
    new[50:350, 100:400] = -7 * old[50:350, 100:400]
    part = np.ascontiguousarray(new[50:350, 100:400])
    requests.put(url, params={**params, "select": "[50:350,100:400]"}, auth=U1,
                 data=part.tobytes(), headers=binary, timeout=30).raise_for_status()
    got = read_all()
    assert np.array_equal(got, new), \
        f"{int((got != new).sum())} values differ from the acknowledged write"
    seen = len(mine())

    # once the DNs have stored the write, a whole read is offloaded again, with new values
    deadline = time.time() + 60
    while len(mine()) == seen:
        assert time.time() < deadline, "no read was offloaded within 60 s of the write"
        time.sleep(0.2)
        assert np.array_equal(read_all(), new)
    last = mine()[-1]
    assert "chunks=400" in last and "fallback=0" in last, last
    assert np.array_equal(read_all(), new)


def test_offloaded_reads_match_and_fall_back(stack):
    cluster, endpoint = stack
    base, params, did = new_dataset(cluster, "/home/test_user1/lambda.h5")
    arr = np.arange(400 * 500, dtype="<i4").reshape(400, 500)
    binary = {"Content-Type": "application/octet-stream"}
    accept = {"Accept": "application/octet-stream"}
    url = f"{base}/datasets/{did}/value"
    requests.put(url, params={**params, "select": "[0:400,0:500]"}, auth=U1,
                 data=arr.tobytes(), headers=binary, timeout=30).raise_for_status()
    # right after a write the data is dirty in the DNs: no offload, and fresh values
    got = requests.get(url, params=params, auth=U1, headers=accept, timeout=30)
    assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(400, 500), arr)
    mine = lambda: [ln for ln in serverless_lines(cluster) if did in ln]    # noqa: E731
    assert mine() == []
    requests.put(base + "/", params=params, auth=U1, json={"flush": 1}, timeout=30)
    assert requests.get(base + f"/datasets/{did}", params=params, auth=U1,
                        timeout=10).json()["layout"]["dims"] == [20, 25]
    # a 400-chunk read goes to Lambda
    got = requests.get(url, params=params, auth=U1, headers=accept, timeout=60)
    assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(400, 500), arr)
    lines = mine()
    assert len(lines) == 1 and "chunks=400" in lines[0] and "fallback=0" in lines[0]
    # points spread over many chunks too
    rng = np.random.default_rng(3)
    pts = np.stack([rng.integers(0, 400, 800), rng.integers(0, 500, 800)], 1).astype("<u8")
    got = requests.post(url, params=params, auth=U1, data=pts.tobytes(),
                        headers={**binary, **accept}, timeout=60)
    assert np.array_equal(np.frombuffer(got.content, "<i4"),
                          arr[pts[:, 0].astype(int), pts[:, 1].astype(int)])
    assert len(mine()) == 2
    # a one-chunk read stays with the DNs
    got = requests.get(url, params={**params, "select": "[0:5,0:5]"}, auth=U1,
                       headers=accept, timeout=30)
    assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(5, 5), arr[:5, :5])
    assert len(mine()) == 2
    # Lambda gone: the read still succeeds through the DNs, and the log says so
    endpoint.terminate()
    endpoint.wait(10)
    got = requests.get(url, params=params, auth=U1, headers=accept, timeout=120)
    assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(400, 500), arr)
    last = mine()[-1]
    assert "fallback=0" not in last and "chunks=400" in last


def broken_zip(path, body: str):
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("chunk_read_lambda/__init__.py", "")
        z.writestr("chunk_read_lambda/lambda_function.py", body)
    return path


FAULTS = {
    "raises": "def lambda_handler(event, context):\n    raise RuntimeError('boom')\n",
    "times_out": "import time\ndef lambda_handler(event, context):\n    time.sleep(30)\n",
    "status_500": "def lambda_handler(event, context):\n    return {'status': 500, 'error': 'x'}\n",
}


@pytest.mark.parametrize("fault", ["raises", "times_out", "status_500", "throttled"])
def test_failed_invocations_fall_back_to_the_dns(stack, tmp_path, moto_endpoint, fault):
    """A function that raises, times out, answers 5xx, or is throttled (429): the read
    still returns the right bytes through the DNs, and the serverless line counts it."""
    cluster, _ = stack
    port = int(cluster.env["AWS_LAMBDA_GATEWAY"].rsplit(":", 1)[1])
    zip_path = ZIP if fault == "throttled" else broken_zip(tmp_path / "f.zip", FAULTS[fault])
    aws = {"AWS_S3_GATEWAY": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    concurrency = "1" if fault == "throttled" else "8"
    endpoint = subprocess.Popen(["bash", str(REPO / "awslambda" / "serve_local.sh"), "--port",
                                 str(port), "--concurrency", concurrency, "--timeout", "1",
                                 f"chunk_read={zip_path}"], env={**os.environ, **aws},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                requests.post(f"http://127.0.0.1:{port}/2015-03-31/functions/x/invocations",
                              timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        base, params = cluster.endpoint, {"domain": f"/home/test_user1/fault_{fault}.h5"}
        assert requests.put(base + "/", params=params, auth=U1, timeout=10).status_code == 201
        body = {"type": "H5T_STD_I32LE", "shape": [400, 500],
                "creationProperties": {"layout": {"class": "H5D_CHUNKED", "dims": [20, 25]}}}
        did = requests.post(base + "/datasets", params=params, auth=U1, json=body,
                            timeout=10).json()["id"]
        arr = (np.arange(400 * 500, dtype="<i4") * 3).reshape(400, 500)
        url = f"{base}/datasets/{did}/value"
        requests.put(url, params=params, auth=U1, data=arr.tobytes(), timeout=30, headers={
            "Content-Type": "application/octet-stream"}).raise_for_status()
        requests.put(base + "/", params=params, auth=U1, json={"flush": 1}, timeout=30)
        got = requests.get(url, params=params, auth=U1, timeout=120,
                           headers={"Accept": "application/octet-stream"})
        assert np.array_equal(np.frombuffer(got.content, "<i4").reshape(400, 500), arr)
        last = serverless_lines(cluster)[-1]
        assert did in last and "fallback=0" not in last, last
    finally:
        endpoint.terminate()
        endpoint.wait(10)



def test_an_answer_is_decoded_strictly():
    """decode_answer undoes base64 (and zstd); data that is not clean base64 raises, so
    the invocation counts as failed and its chunks go to the DNs (call())."""
    import base64
    import json

    import zstandard

    from server.offload.serverless import decode_answer
    raw = bytes(range(256)) * 300
    plain = {"status": 200, "data": base64.b64encode(raw).decode(), "parts": []}
    assert decode_answer(json.dumps(plain).encode())["data"] == raw
    packed = {**plain, "encoding": "zstd",
              "data": base64.b64encode(zstandard.ZstdCompressor().compress(raw)).decode()}
    assert decode_answer(json.dumps(packed).encode())["data"] == raw
    for bad in ("not base64!", plain["data"][:-1], "QUJD\nREVG"):
        with pytest.raises(ValueError):      # binascii.Error is a ValueError
            decode_answer(json.dumps({**plain, "data": bad}).encode())
    assert decode_answer(b'{"status": 500}') == {"status": 500}
