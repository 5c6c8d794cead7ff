"""The chunk_read handler against S3 on moto's server: the same bytes as numpy slicing
of the stored chunks (the kernel the DNs use), missing chunks reported, errors as values."""
import base64
import importlib
import json
import sys

import numpy as np
import pytest

from conftest import REPO, make_bucket
from server.core import ids
from server.core.chunks import codec_for

DSET = {"id": "d-83d8d88d-2f87bd91-5613-0fdb84-64f7f4",
        "type": {"class": "H5T_FLOAT", "base": "H5T_IEEE_F32LE"},
        "shape": {"class": "H5S_SIMPLE", "dims": [64, 64]},
        "layout": {"class": "H5D_CHUNKED", "dims": [32, 32]},
        "filters": [{"class": "H5Z_FILTER_DEFLATE", "id": 1, "name": "gzip", "level": 6}]}


@pytest.fixture(scope="module")
def handler(moto_endpoint):
    import os
    os.environ["AWS_S3_GATEWAY"] = moto_endpoint
    os.environ.setdefault("AWS_REGION", "us-east-1")
    if str(REPO) not in sys.path:               # the handler package is not installed
        sys.path.insert(0, str(REPO))
    module = importlib.import_module("chunk_read_lambda.lambda_function")
    module._getter = None
    s3 = make_bucket(moto_endpoint, "lambdatest")
    doc = {"id": DSET["id"], "type": DSET["type"], "shape": DSET["shape"],
           "creationProperties": {"layout": DSET["layout"], "filters": DSET["filters"]}}
    codec = codec_for(doc, (32, 32))
    full = np.arange(64 * 64, dtype="<f4").reshape(64, 64)
    for index in ((0, 0), (0, 1), (1, 0)):          # chunk (1, 1) never written
        block = full[index[0] * 32:(index[0] + 1) * 32, index[1] * 32:(index[1] + 1) * 32]
        s3.put_object(Bucket="lambdatest", Key=ids.chunk_key(ids.chunk_id(DSET["id"], index)),
                      Body=bytes(codec.encode(np.ascontiguousarray(block))))
    yield module.lambda_handler, full


def event(kind, chunks):
    return {"request_id": "t1", "bucket": "lambdatest", "dataset": DSET, "kind": kind,
            "chunks": chunks}


def part_bytes(answer, i):
    data = base64.b64decode(answer["data"])
    part = answer["parts"][i]
    return data[part["offset"]:part["offset"] + part["size"]]


def test_hyperslab_batch(handler, capsys):
    fn, full = handler
    chunks = [{"id": ids.chunk_id(DSET["id"], (0, 1)), "select": [[0, 32, 3], [5, 6, 1]]},
              {"id": ids.chunk_id(DSET["id"], (1, 0)), "select": [[0, 32, 1], [0, 32, 1]]},
              {"id": ids.chunk_id(DSET["id"], (1, 1)), "select": [[0, 1, 1], [0, 1, 1]]}]
    answer = fn(event("hyperslab", chunks), None)
    assert answer["status"] == 200
    assert np.array_equal(np.frombuffer(part_bytes(answer, 0), "<f4"), full[0:32:3, 37])
    assert np.array_equal(np.frombuffer(part_bytes(answer, 1), "<f4"),
                          full[32:64, 0:32].ravel())
    assert answer["parts"][2]["found"] is False and answer["parts"][2]["size"] == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["request_id"] == "t1" and line["chunks"] == 3
    # CloudWatch Embedded Metric Format: every named metric is a key of the line
    emf = line["_aws"]["CloudWatchMetrics"][0]
    assert emf["Namespace"] == "h5cloud" and emf["Dimensions"] == [["FunctionName"]]
    assert {m["Name"] for m in emf["Metrics"]} == {"ChunksRead", "BytesRead", "ReadMs"}
    assert line["ChunksRead"] == 3 and line["BytesRead"] > 0 and "FunctionName" in line


def test_points_and_query(handler):
    fn, full = handler
    coords = np.array([[0, 0], [31, 31], [5, 2]], "<u8")
    answer = fn(event("points", [{"id": ids.chunk_id(DSET["id"], (0, 0)),
                                  "points": base64.b64encode(coords.tobytes()).decode()}]),
                None)
    assert np.frombuffer(part_bytes(answer, 0), "<f4").tolist() == [0.0, 2015.0, 322.0]
    answer = fn(event("query", [{"id": ids.chunk_id(DSET["id"], (0, 0)),
                                 "query": "x > 1", "select": [[0, 32, 1]]}]), None)
    assert answer["status"] == 400           # not a compound dataset: the kernel's 400


def test_s3_faults_are_retried_then_503(handler, moto_endpoint, monkeypatch):
    """The function's own GETs (signed, sent with urllib3): 'not now' answers, resets,
    bodies cut short or damaged are retried and the bytes come right; a GET that keeps
    failing is a 503 (the SN then reads through the DNs), never wrong bytes."""
    import re

    from s3_faults import FaultProxy

    fn, full = handler
    module = sys.modules["chunk_read_lambda.lambda_function"]
    with FaultProxy(moto_endpoint, seed=5) as proxy:
        monkeypatch.setenv("AWS_S3_GATEWAY", proxy.url)
        monkeypatch.setattr(module, "_getter", None)
        index = ((0, 0), (0, 1), (1, 0), (0, 0))
        for fault, where in zip(("slowdown", "reset", "truncate", "corrupt"), index[:3]):
            proxy.inject(fault, methods="GET", times=1,
                         match=re.escape(ids.chunk_key(ids.chunk_id(DSET["id"], where))))
        proxy.inject("corrupt", methods="GET", times=1, limit=1)
        whole = [[0, 32, 1], [0, 32, 1]]
        chunks = [{"id": ids.chunk_id(DSET["id"], i), "select": whole} for i in index[:3]]
        answer = fn(event("hyperslab", chunks), None)
        assert answer["status"] == 200
        for n, (r, c) in enumerate(index[:3]):
            want = full[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32].ravel()
            assert np.array_equal(np.frombuffer(part_bytes(answer, n), "<f4"), want)
        assert sum(proxy.stats[f] for f in ("slowdown", "reset", "truncate", "corrupt")) == 4
        proxy.clear()
        proxy.inject("internal", methods="GET")
        answer = fn(event("hyperslab", chunks[:1]), None)
        assert answer["status"] == 503 and "InternalError" in answer["error"]
        assert proxy.stats["internal"] == module.ATTEMPTS


def test_errors_are_values(handler):
    fn, _ = handler
    assert fn({"nothing": 1}, None)["status"] == 400
    assert fn(event("sideways", []), None)["status"] == 400
    bad_bucket = {**event("hyperslab", [{"id": ids.chunk_id(DSET["id"], (0, 0)),
                                          "select": [[0, 1, 1], [0, 1, 1]]}]), "bucket": "nope"}
    assert fn(bad_bucket, None)["status"] == 404


LAMBDA_PY = REPO / ".venv-lambda312" / "bin" / "python"


def test_built_zip_runs_on_the_runtime_python(handler, moto_endpoint, tmp_path):
    """awslambda/build.sh's zip, unpacked and run by python3.12 (the function's runtime,
    with boto3 as the runtime has it): manylinux wheels for 3.12 load, the handler answers."""
    import subprocess
    import zipfile
    if not LAMBDA_PY.exists():
        pytest.skip("no .venv-lambda312 (./testall.sh makes it where python3.12 exists)")
    build = subprocess.run(["bash", str(REPO / "awslambda" / "build.sh")], cwd=REPO,
                           capture_output=True, text=True, timeout=600,
                           env={**__import__("os").environ, "PIP": f"{sys.executable} -m pip"})
    assert build.returncode == 0, build.stdout + build.stderr
    assert "dist/chunk_read.zip" in build.stdout
    with zipfile.ZipFile(REPO / "dist" / "chunk_read.zip") as z:
        names = z.namelist()
        assert "chunk_read_lambda/lambda_function.py" in names
        assert "server/core/chunks.py" in names
        assert not any(n.startswith(("server/sn/", "server/dn/", "boto3/")) for n in names)
        z.extractall(tmp_path / "fn")
    ev = event("hyperslab", [{"id": ids.chunk_id(DSET["id"], (0, 0)),
                              "select": [[0, 2, 1], [0, 3, 1]]}])
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from chunk_read_lambda import lambda_function as f; "
            "print(json.dumps(f.lambda_handler(json.loads(sys.argv[2]), None)))")
    env = {"AWS_S3_GATEWAY": moto_endpoint, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "PATH": "/usr/bin:/bin"}
    run = subprocess.run([str(LAMBDA_PY), "-c", code, str(tmp_path / "fn"), json.dumps(ev)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    _, full = handler
    assert answer["status"] == 200
    assert np.frombuffer(base64.b64decode(answer["data"]), "<f4").tolist() == \
        full[0:2, 0:3].ravel().tolist()


def test_local_invoke_endpoint_runs_the_zip(handler, moto_endpoint):
    """serve_local.sh serves the built zip; botocore's Lambda client invokes it."""
    import os
    import subprocess
    import time

    import boto3
    import botocore.exceptions
    from server.launch import free_ports
    if not LAMBDA_PY.exists() or not (REPO / "dist" / "chunk_read.zip").exists():
        pytest.skip("needs .venv-lambda312 and dist/chunk_read.zip (the test above)")
    port = free_ports(1)
    env = {**os.environ, "AWS_S3_GATEWAY": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    proc = subprocess.Popen(["bash", str(REPO / "awslambda" / "serve_local.sh"), "--port",
                             str(port), "--concurrency", "2",
                             f"chunk_read={REPO / 'dist' / 'chunk_read.zip'}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        ev = event("hyperslab", [{"id": ids.chunk_id(DSET["id"], (0, 0)),
                                  "select": [[1, 2, 1], [0, 4, 1]]}])
        for _ in range(100):
            try:
                rsp = client.invoke(FunctionName="chunk_read", Payload=json.dumps(ev))
                break
            except botocore.exceptions.EndpointConnectionError:
                time.sleep(0.1)
        answer = json.loads(rsp["Payload"].read())
        assert "FunctionError" not in rsp and answer["status"] == 200
        _, full = handler
        assert np.frombuffer(base64.b64decode(answer["data"]), "<f4").tolist() == \
            full[1, 0:4].tolist()
        bad = client.invoke(FunctionName="chunk_read", Payload=b"[1, 2]")
        assert json.loads(bad["Payload"].read())["status"] == 400
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="nope", Payload=b"{}")
    finally:
        proc.terminate()
        proc.wait(10)


def test_big_answers_go_compressed_when_shorter(handler):
    """An answer of 64 KiB or more is zstd-compressed before base64 when that saves a
    fifth; the SN's decode_answer gives back the same bytes either way."""
    from server.offload.serverless import decode_answer
    fn, full = handler
    cid = ids.chunk_id(DSET["id"], (0, 0))
    whole = {"id": cid, "select": [[0, 32, 1], [0, 32, 1]]}
    answer = fn(event("hyperslab", [whole] * 20), None)      # 80 KiB, repetitive
    assert answer["encoding"] == "zstd"
    assert answer["stats"]["bytes_sent"] < answer["stats"]["bytes_out"] / 4
    data = decode_answer(json.dumps(answer).encode())["data"]
    assert data == full[0:32, 0:32].astype("<f4").tobytes() * 20
    small = fn(event("hyperslab", [whole] * 2), None)          # 8 KiB: as it is
    assert "encoding" not in small
    assert decode_answer(json.dumps(small).encode())["data"] == part_bytes(small, 0) * 2
