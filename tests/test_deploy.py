"""awslambda/deploy.sh against moto's server with the aws CLI: the role with its trust
and policies, the function with handler, runtime, memory, timeout and environment; a
second run updates the code; with DASHBOARD, the CloudWatch dashboard's body."""
import json
import os
import re
import shutil
import subprocess
import zipfile

import boto3
import pytest

from conftest import REPO


def deploy(env, *args):
    return subprocess.run(["bash", str(REPO / "awslambda" / "deploy.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def clients(moto_endpoint):
    """(iam, lambda) boto3 clients on moto's server."""
    kw = dict(endpoint_url=moto_endpoint, region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    return boto3.client("iam", **kw), boto3.client("lambda", **kw)


def deploy_env(moto_endpoint, archive, **extra) -> dict:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CLI": aws_cli(), "ZIP": str(archive),
           **extra}
    env.pop("BUCKET_NAME", None)
    return env


def fake_zip(path, handler_file: str):
    """A function zip whose handler module returns 1 (deploy.sh never runs it)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(handler_file, "def lambda_handler(e, c):\n    return 1\n")
    return path


def attached_policies(iam, role: str) -> set:
    return {p["PolicyName"] for p in
            iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}


def as_dict(document):
    """A policy document as moto gives it: a dict, or its JSON text."""
    return json.loads(document) if isinstance(document, str) else document


def aws_cli():
    local = REPO / ".venv-awscli" / "bin" / "aws"
    return str(local) if local.exists() else shutil.which("aws")


def dashboard_metrics(body: dict) -> list:
    """(namespace, name, {dimension: value}, options, widget properties) of every metric
    of a dashboard body, after checking the body's structure (CloudWatch's dashboard body
    rules for metric widgets: a 24-column grid, metrics as [namespace, name, dimension
    name/value pairs..., {options}])."""
    found = []
    assert isinstance(body["widgets"], list) and body["widgets"]
    for w in body["widgets"]:
        assert w["type"] == "metric"
        assert 0 <= w["x"] and 1 <= w["width"] and w["x"] + w["width"] <= 24
        assert 0 <= w["y"] and 1 <= w["height"] <= 1000
        props = w["properties"]
        assert props["title"] and props["region"] and props["view"] == "timeSeries"
        assert props["metrics"]
        for m in props["metrics"]:
            options = m[-1] if isinstance(m[-1], dict) else {}
            plain = m[:-1] if options else m
            assert all(isinstance(v, str) for v in plain) and len(plain) % 2 == 0, m
            namespace, name, *dims = plain
            stat = options.get("stat", props["stat"])
            assert stat in ("Sum", "Average", "Minimum", "Maximum", "SampleCount") or \
                (stat[0] == "p" and float(stat[1:]) <= 100), stat
            found.append((namespace, name, dict(zip(dims[::2], dims[1::2])), options, props))
    return found


def emf_names(path) -> set:
    """Metric names a source file declares in its EMF directives."""
    return set(re.findall(r'"Name": "(\w+)"', (REPO / path).read_text()))


@pytest.mark.skipif(aws_cli() is None, reason="no aws CLI (./testall.sh installs one)")
def test_deploy_creates_then_updates(moto_endpoint, tmp_path):
    archive = fake_zip(tmp_path / "fn.zip", "chunk_read_lambda/lambda_function.py")
    env = deploy_env(moto_endpoint, archive, S3_GATEWAY="http://s3.example:9000",
                     ROLE_NAME="h5cloud-test-role")
    first = deploy(env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "creating function chunk_read" in first.stdout
    iam, lam = clients(moto_endpoint)
    role = iam.get_role(RoleName="h5cloud-test-role")["Role"]
    trust = as_dict(role["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"]["Service"] == "lambda.amazonaws.com"
    assert attached_policies(iam, "h5cloud-test-role") == {"AWSLambdaBasicExecutionRole",
                                                           "AmazonS3ReadOnlyAccess"}
    conf = lam.get_function(FunctionName="chunk_read")["Configuration"]
    assert conf["Handler"] == "chunk_read_lambda.lambda_function.lambda_handler"
    assert conf["Runtime"] == "python3.12" and conf["MemorySize"] == 128
    assert conf["Timeout"] == 30 and conf["Role"] == role["Arn"]
    assert conf["Environment"]["Variables"] == {"LOG_LEVEL": "INFO",
                                                "AWS_S3_GATEWAY": "http://s3.example:9000"}
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("extra.txt", "new code")
    second = deploy(env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "updating function chunk_read" in second.stdout
    after = lam.get_function(FunctionName="chunk_read")["Configuration"]
    assert after["CodeSha256"] != conf["CodeSha256"]


@pytest.mark.skipif(aws_cli() is None, reason="no aws CLI (./testall.sh installs one)")
def test_deploy_hslambda(moto_endpoint, tmp_path):
    """`deploy.sh hslambda`: the whole server, 1024 MB, full access to its one bucket; a
    dashboard with its own EMF metrics and no SN offload widgets."""
    archive = fake_zip(tmp_path / "hslambda.zip", "server/lambda_app/__init__.py")
    env = deploy_env(moto_endpoint, archive, ROLE_NAME="h5cloud-test-hslambda",
                     FUNCTION_BUCKET="mybucket", DASHBOARD="h5cloud-hs")
    run = deploy(env, "hslambda")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "creating function hslambda" in run.stdout
    iam, lam = clients(moto_endpoint)
    assert attached_policies(iam, "h5cloud-test-hslambda") == {"AWSLambdaBasicExecutionRole"}
    inline = as_dict(iam.get_role_policy(RoleName="h5cloud-test-hslambda",
                                         PolicyName="h5cloud-bucket-mybucket")["PolicyDocument"])
    assert inline["Statement"][0]["Action"] == "s3:*"
    assert set(inline["Statement"][0]["Resource"]) == {"arn:aws:s3:::mybucket",
                                                       "arn:aws:s3:::mybucket/*"}
    conf = lam.get_function(FunctionName="hslambda")["Configuration"]
    assert conf["Handler"] == "server.lambda_app.lambda_handler"
    assert conf["Runtime"] == "python3.12" and conf["MemorySize"] == 1024
    assert conf["Timeout"] == 30
    assert conf["Environment"]["Variables"] == {"LOG_LEVEL": "INFO", "BUCKET_NAME": "mybucket"}
    cw = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    metrics = dashboard_metrics(json.loads(
        cw.get_dashboard(DashboardName="h5cloud-hs")["DashboardBody"]))
    assert {dims["FunctionName"] for _, _, dims, _, _ in metrics} == {"hslambda"}
    assert {name for namespace, name, _, _, _ in metrics if namespace == "AWS/Lambda"} == \
        {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"}
    own = {name for namespace, name, _, _, _ in metrics if namespace == "h5cloud"}
    assert own == emf_names("server/lambda_app/handler.py") == \
        {"RequestMs", "ClientErrors", "ColdStarts"}
    bad = deploy(env, "nope")
    assert bad.returncode == 2 and "unknown function" in bad.stderr


@pytest.mark.skipif(aws_cli() is None, reason="no aws CLI (./testall.sh installs one)")
def test_deploy_dashboard(moto_endpoint, tmp_path):
    """DASHBOARD=name: the function's AWS/Lambda metrics, its own EMF metrics and (for
    chunk_read) the SN's offload decisions, for this function in this region."""
    from server.offload import emf
    archive = fake_zip(tmp_path / "fn.zip", "chunk_read_lambda/lambda_function.py")
    env = deploy_env(moto_endpoint, archive, ROLE_NAME="h5cloud-test-dash",
                     FUNCTION_NAME="cr-dash", REGION="us-west-2", DASHBOARD="h5cloud-test")
    run = deploy(env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "dashboard h5cloud-test in us-west-2" in run.stdout
    cw = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name="us-west-2",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    body = json.loads(cw.get_dashboard(DashboardName="h5cloud-test")["DashboardBody"])
    metrics = dashboard_metrics(body)
    assert {props["region"] for *_, props in metrics} == {"us-west-2"}
    assert {dims["FunctionName"] for _, _, dims, _, _ in metrics} == {"cr-dash"}
    by_ns = {}
    for namespace, name, dims, options, props in metrics:
        by_ns.setdefault(namespace, set()).add(
            (name, tuple(sorted(dims)), options.get("stat", props["stat"])))
    assert by_ns["AWS/Lambda"] == {
        ("Invocations", ("FunctionName",), "Sum"), ("Errors", ("FunctionName",), "Sum"),
        ("Throttles", ("FunctionName",), "Sum"), ("Duration", ("FunctionName",), "p50"),
        ("Duration", ("FunctionName",), "p99"),
        ("ConcurrentExecutions", ("FunctionName",), "Maximum")}
    own = {name for name, dims, _ in by_ns["h5cloud"] if dims == ("FunctionName",)}
    assert own == emf_names("chunk_read_lambda/lambda_function.py") == \
        {"ChunksRead", "BytesRead", "ReadMs"}
    sn = [(name, dims) for namespace, name, dims, _, _ in metrics
          if namespace == "h5cloud" and "Plan" in dims]
    assert {tuple(sorted(d)) for _, d in sn} == {tuple(sorted(emf.DIMENSIONS[0]))}
    record = emf.decision_record(plan="lambda", kind="read", dataset="d", chunks=1,
                                 est_dn_ms=1, est_lambda_ms=1, ms=1, invocations=1,
                                 fallbacks=0, cost_usd=0, explored=False, function="cr-dash")
    emitted = {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {name for name, _ in sn} == emitted          # every SN metric, no stray name
    plans = {}
    for name, dims in sn:
        plans.setdefault(name, set()).add(dims["Plan"])
    for name in ("EstDnMs", "EstLambdaMs", "MeasuredMs", "ModelError", "OffloadChunks"):
        assert plans[name] == {"dn", "lambda"}, name
    assert plans["Invocations"] >= {"lambda"} and plans["CostUsd"] >= {"lambda"}
    bad = deploy({**env, "DASHBOARD": "no spaces"})
    assert bad.returncode == 2 and "DASHBOARD" in bad.stderr
