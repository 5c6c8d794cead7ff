"""The one-function server's handler, in this process, over S3 on moto's server: every
event form, JSON and binary bodies, identity, ACLs and errors (LAMBDA.md Part C).
The built zip behind the local Invoke endpoint, h5pyd and concurrency: test_hslambda.py."""
import base64
import json
import logging
import os
import uuid
from unittest import mock

import numpy as np
import pytest

from conftest import make_bucket, write_auth_files
from server.lambda_app import events

FN = "hslambda"
BUCKET = "lambdaapp"


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ADMIN = {"Authorization": basic("admin", "admin")}
USER1 = {"Authorization": basic("test_user1", "test")}


@pytest.fixture(scope="module")
def invoke(tmp_path_factory, moto_endpoint):
    """invoke(event) -> the handler's answer, from one warm instance."""
    from server.lambda_app.handler import Runtime
    make_bucket(moto_endpoint, BUCKET)
    env = {"AWS_S3_GATEWAY": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "BUCKET_NAME": BUCKET, "ROOT_DIR": "", "LOG_LEVEL": "WARNING",
           **write_auth_files(tmp_path_factory.mktemp("lambda-config"))}
    with mock.patch.dict(os.environ, env):
        runtime = Runtime(FN)
    yield runtime.handle
    runtime.close()


def direct(method, path, domain=None, params=None, headers=None, body=None, **extra):
    event = {"method": method, "path": path, "params": dict(params or {}),
             "headers": dict(headers or {}), **extra}
    if domain:
        event["params"]["domain"] = domain
    if body is not None:
        event["body"] = body
    return event


def gateway(method, path, query="", headers=None, body=None, binary=False, stage="$default"):
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
             "headers": {k.lower(): v for k, v in (headers or {}).items()},
             "requestContext": {"http": {"method": method, "path": path}, "stage": stage,
                                "domainName": "abc.execute-api.us-east-1.amazonaws.com"},
             "isBase64Encoded": binary}
    if body is not None:
        event["body"] = body
    return event


@pytest.fixture(scope="module")
def domains(invoke):
    """/home/hslambda (the function's own folder) and /home/test_user1/private.h5."""
    for path, owner in [("/home", "admin"), (f"/home/{FN}", FN), ("/home/test_user1", "test_user1")]:
        rsp = invoke(direct("PUT", "/", path, headers=ADMIN,
                            body={"folder": True, "owner": owner}))
        assert rsp["statusCode"] == 201, rsp
    private = "/home/test_user1/private.h5"
    assert invoke(direct("PUT", "/", private, headers=USER1))["statusCode"] == 201
    return {"own": f"/home/{FN}", "private": private}


def new_domain(invoke, domains):
    path = f"{domains['own']}/{uuid.uuid4().hex[:8]}.h5"
    rsp = invoke(direct("PUT", "/", path))
    assert rsp["statusCode"] == 201, rsp
    return path, rsp["body"]["root"]


def test_console_test_event_answers_about(invoke):
    rsp = invoke({"key1": "value1", "key2": "value2", "key3": "value3"})
    assert rsp["statusCode"] == 200 and rsp["status_code"] == 200
    assert rsp["output"]["state"] == "READY" and "hsds_version" in rsp["output"]
    assert json.loads(rsp["headers"])["Content-Type"].startswith("application/json")


def test_direct_events_run_as_the_function(invoke, domains):
    path, root = new_domain(invoke, domains)
    rsp = invoke(direct("GET", "/", path))
    assert rsp["statusCode"] == 200 and rsp["isBase64Encoded"] is False
    assert isinstance(rsp["body"], dict) and rsp["body"]["owner"] == FN
    # "request" is an alias of "path"; a body as JSON text or as an object
    as_text = invoke({"method": "POST", "request": "/groups", "params": {"domain": path},
                      "body": json.dumps({"link": {"id": root, "name": "g1"}})})
    as_object = invoke(direct("POST", "/groups", path, body={"link": {"id": root, "name": "g2"}}))
    assert as_text["statusCode"] == 201 and as_object["statusCode"] == 201
    links = invoke(direct("GET", f"/groups/{root}/links", path))["body"]["links"]
    assert sorted(link["title"] for link in links) == ["g1", "g2"]
    rsp = invoke(direct("PUT", f"/groups/{root}/attributes/note", path,
                        body={"type": "H5T_STD_I32LE", "shape": [3], "value": [1, 2, 3]}))
    assert rsp["statusCode"] == 201
    rsp = invoke(direct("GET", f"/groups/{root}/attributes/note", path))
    assert rsp["body"]["value"] == [1, 2, 3]
    # an empty JSON answer comes as text h5pyd can parse
    rsp = invoke(direct("DELETE", f"/groups/{root}/attributes/note", path))
    assert rsp["statusCode"] == 200 and json.loads(rsp["body"]) == {}


def test_binary_bodies_both_ways(invoke, domains):
    path, root = new_domain(invoke, domains)
    rsp = invoke(direct("POST", "/datasets", path, body={
        "type": "H5T_IEEE_F64LE", "shape": [20, 30], "link": {"id": root, "name": "x"}}))
    dset = rsp["body"]["id"]
    data = np.arange(600, dtype="<f8").reshape(20, 30) / 7
    binary = {"Content-Type": "application/octet-stream"}
    rsp = invoke(direct("PUT", f"/datasets/{dset}/value", path, headers=binary,
                        body=base64.b64encode(data.tobytes()).decode(), isBase64Encoded=True))
    assert rsp["statusCode"] == 200, rsp
    part = np.full((2, 30), -1.5)
    rsp = invoke(direct("PUT", f"/datasets/{dset}/value", path, params={"select": "[4:6,:]"},
                        headers=binary, body=part.tobytes().hex(), isBase64Encoded=True,
                        encoding="hex"))
    assert rsp["statusCode"] == 200, rsp
    data[4:6] = part
    # direct: hex text under isBase64Encoded (what h5pyd 0.24 decodes), Content-Type kept
    rsp = invoke(direct("GET", f"/datasets/{dset}/value", path, params={"select": "[0:20:3,5]"},
                        headers={"Accept": "application/octet-stream"}))
    assert rsp["statusCode"] == 200 and rsp["isBase64Encoded"] is True
    assert json.loads(rsp["headers"])["Content-Type"] == "application/octet-stream"
    assert np.array_equal(np.frombuffer(bytes.fromhex(rsp["body"]), "<f8"), data[0:20:3, 5])
    # API Gateway: real base64, headers as a dict
    query = f"domain={path}&select=[2:7,1:4]"
    rsp = invoke(gateway("GET", f"/datasets/{dset}/value", query, headers={
        "Authorization": basic(FN, "lambda"), "Accept": "application/octet-stream"}))
    assert rsp["statusCode"] == 200 and rsp["isBase64Encoded"] is True
    assert rsp["headers"]["Content-Type"] == "application/octet-stream"
    got = np.frombuffer(base64.b64decode(rsp["body"]), "<f8").reshape(5, 3)
    assert np.array_equal(got, data[2:7, 1:4])
    # JSON values through API Gateway, under a named stage
    rsp = invoke(gateway("GET", f"/prod/datasets/{dset}/value", f"domain={path}&select=[5,0:2]",
                         headers={"Authorization": basic(FN, "lambda")}, stage="prod"))
    assert rsp["statusCode"] == 200 and rsp["isBase64Encoded"] is False
    assert json.loads(rsp["body"])["value"] == [data[5, 0:2].tolist()]   # as HSDS: no reduction
    # a binary write through API Gateway (base64 body)
    rsp = invoke(gateway("PUT", f"/datasets/{dset}/value", f"domain={path}&select=[0,0:3]",
                         headers={"Authorization": basic(FN, "lambda"),
                                  "Content-Type": "application/octet-stream"},
                         body=base64.b64encode(np.array([7.0, 8, 9]).tobytes()).decode(),
                         binary=True))
    assert rsp["statusCode"] == 200, rsp
    rsp = invoke(direct("GET", f"/datasets/{dset}/value", path, params={"select": "[0,0:4]"}))
    assert rsp["body"]["value"] == [[7.0, 8.0, 9.0, data[0, 3]]]


def test_variable_length_values(invoke, domains):
    """vlen strings and sequences through the in-process data nodes, with unwritten ones."""
    path, root = new_domain(invoke, domains)
    vstr = {"class": "H5T_STRING", "charSet": "H5T_CSET_UTF8", "length": "H5T_VARIABLE",
            "strPad": "H5T_STR_NULLTERM"}
    vseq = {"class": "H5T_VLEN", "base": "H5T_STD_I16LE"}
    for dtype, written in ((vstr, ["a", "", "\u00e9t\u00e9"]), (vseq, [[1, 2], [], [3]])):
        dset = invoke(direct("POST", "/datasets", path,
                             body={"type": dtype, "shape": [5]}))["body"]["id"]
        rsp = invoke(direct("PUT", f"/datasets/{dset}/value", path,
                            body={"value": written, "start": [1], "stop": [4]}))
        assert rsp["statusCode"] == 200, rsp
        value = invoke(direct("GET", f"/datasets/{dset}/value", path))["body"]["value"]
        assert value[1:4] == written and len(value) == 5


def test_deleting_a_domain_removes_its_objects(invoke, domains, moto_endpoint):
    """No background work in a function: its keys are gone when the answer comes."""
    import boto3

    from server.core import ids
    path, root = new_domain(invoke, domains)
    dset = invoke(direct("POST", "/datasets", path, body={
        "type": "H5T_STD_I32LE", "shape": [8], "link": {"id": root, "name": "d"}}))["body"]["id"]
    assert invoke(direct("PUT", f"/datasets/{dset}/value", path,
                         body={"value": list(range(8))}))["statusCode"] == 200
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    prefix = ids.root_prefix(root)

    def keys():
        return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
                .get("Contents", [])]

    assert len(keys()) >= 3                    # root group, dataset, its chunk
    assert invoke(direct("DELETE", "/", path))["statusCode"] == 200
    assert keys() == []
    assert invoke(direct("GET", "/", path))["statusCode"] in (404, 410)


def test_gateway_identity_is_basic_auth(invoke, domains):
    path, root = new_domain(invoke, domains)
    q = f"domain={path}"
    # no credentials: anonymous, which may not write (and the domain is not public)
    assert invoke(gateway("PUT", "/", f"domain={path}x"))["statusCode"] == 401
    assert invoke(gateway("GET", "/", q))["statusCode"] == 403
    wrong = invoke(gateway("GET", "/", q, headers={"Authorization": basic(FN, "nope")}))
    assert wrong["statusCode"] == 401
    ok = invoke(gateway("GET", "/", q, headers={"Authorization": basic(FN, "lambda")}))
    assert ok["statusCode"] == 200 and json.loads(ok["body"])["root"] == root
    # users of the password file are themselves, with the ACLs of the domain
    user1 = invoke(gateway("GET", "/", q, headers=USER1))
    assert user1["statusCode"] == 403


def test_errors(invoke, domains):
    # 404: no such domain, no such object, no such route
    rsp = invoke(direct("GET", "/", f"{domains['own']}/missing.h5"))
    assert rsp["statusCode"] == 404 and rsp["body"]["message"]
    path, root = new_domain(invoke, domains)
    missing = root.replace("g-", "d-")
    assert invoke(direct("GET", f"/datasets/{missing}", path))["statusCode"] == 404
    assert invoke(direct("GET", "/nothing/here", path))["statusCode"] == 404
    # 403: the function may not read a domain of test_user1's until an ACL says so
    rsp = invoke(direct("GET", "/", domains["private"]))
    assert rsp["statusCode"] == 403 and "hslambda" in rsp["body"]["message"]
    grant = invoke(direct("PUT", f"/acls/{FN}", domains["private"], headers=USER1,
                          body={"read": True}))
    assert grant["statusCode"] == 201, grant
    assert invoke(direct("GET", "/", domains["private"]))["statusCode"] == 200
    assert invoke(direct("POST", "/groups", domains["private"]))["statusCode"] == 403
    # 400: a malformed event, a bad selection, a body that is not JSON
    for event in ({"method": "GET", "path": 42},
                  {"method": "GET", "path": "/", "params": "domain"},
                  {"method": "PUT", "path": "/", "body": "%%%", "isBase64Encoded": True}):
        rsp = invoke(event)
        assert rsp["statusCode"] == 400 and rsp["body"]["message"], rsp
    rsp = invoke(direct("POST", "/datasets", path, body={"type": "H5T_STD_I8LE", "shape": [4]}))
    dset = rsp["body"]["id"]
    rsp = invoke(direct("GET", f"/datasets/{dset}/value", path, params={"select": "[9:2]"}))
    assert rsp["statusCode"] == 400
    rsp = invoke(direct("POST", "/groups", path, body="{not json"))
    assert rsp["statusCode"] == 400
    bad = invoke(gateway("GET", "/", "domain=x", body="!!", binary=True))
    assert bad["statusCode"] == 400 and isinstance(bad["headers"], dict)


def test_answers_over_the_payload_limit_are_413(invoke, domains):
    path, root = new_domain(invoke, domains)
    rsp = invoke(direct("POST", "/datasets", path, body={"type": "H5T_STD_U8LE",
                                                         "shape": [4 * 1024 * 1024]}))
    dset = rsp["body"]["id"]
    rsp = invoke(direct("GET", f"/datasets/{dset}/value", path,
                        headers={"Accept": "application/octet-stream"}))
    assert rsp["statusCode"] == 413 and "select less" in rsp["body"]["message"]
    rsp = invoke(direct("GET", f"/datasets/{dset}/value", path, params={"select": "[0:1000]"},
                        headers={"Accept": "application/octet-stream"}))
    assert rsp["statusCode"] == 200 and bytes.fromhex(rsp["body"]) == bytes(1000)


def test_log_lines_are_json_with_metrics(tmp_path_factory, moto_endpoint, capsys):
    """lambda_handler's own line per invocation: request id, status, cold start, EMF."""
    from server.lambda_app import handler as module
    env = {"AWS_S3_GATEWAY": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "BUCKET_NAME": BUCKET, "ROOT_DIR": ""}

    class Context:
        function_name, aws_request_id = FN, "req-1"

    with mock.patch.dict(os.environ, env), mock.patch.object(module, "_runtime", None), \
            mock.patch.object(module, "setup_logging"):     # pytest owns this process's logs
        first = module.lambda_handler({"method": "GET", "path": "/nothing"}, Context())
        Context.aws_request_id = "req-2"
        module.lambda_handler({"key1": "value1"}, Context())
        module._runtime.close()
    assert first["statusCode"] == 404
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    cold, warm = [ln for ln in lines if "_aws" in ln]
    assert cold["request_id"] == "req-1" and cold["status"] == 404 and cold["cold_start_ms"] > 0
    assert cold["ClientErrors"] == 1 and cold["ColdStarts"] == 1
    assert warm["request_id"] == "req-2" and warm["ColdStarts"] == 0 and warm["RequestMs"] >= 0
    emf = cold["_aws"]["CloudWatchMetrics"][0]
    assert emf["Namespace"] == "h5cloud" and cold["FunctionName"] == FN
    assert all(m["Name"] in cold for m in emf["Metrics"])
    record = logging.LogRecord("h5cloud.lambda", logging.INFO, "", 0, "hello %s", ("x",), None)
    assert json.loads(module.JsonLines().format(record)) == {
        "level": "INFO", "logger": "h5cloud.lambda", "request_id": "req-2", "message": "hello x"}


def test_request_of_forms():
    """The parser alone: query strings with repeats, stages, console events."""
    req = events.request_of(gateway("GET", "/stage1/groups", "a=1&a=2&b=", stage="stage1"))
    assert req.path == "/groups" and req.params == [("a", "1"), ("a", "2"), ("b", "")]
    assert events.request_of({"anything": 1}).form == events.CONSOLE
    assert events.request_of([1, 2]).form == events.CONSOLE
    req = events.request_of({"method": "get", "path": "/", "params": {"x": [1, 2], "y": None}})
    assert req.method == "GET" and req.params == [("x", "1"), ("x", "2")]
