"""awslambda/deploy.sh against moto's server with the aws CLI: the role with its trust
and policies, the function with handler, runtime, memory, timeout and environment; a
second run updates the code."""
import json
import os
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
    """`deploy.sh hslambda`: the whole server, 1024 MB, full access to its one bucket."""
    archive = fake_zip(tmp_path / "hslambda.zip", "server/lambda_app/__init__.py")
    env = deploy_env(moto_endpoint, archive, ROLE_NAME="h5cloud-test-hslambda",
                     FUNCTION_BUCKET="mybucket")
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
    bad = deploy(env, "nope")
    assert bad.returncode == 2 and "unknown function" in bad.stderr
