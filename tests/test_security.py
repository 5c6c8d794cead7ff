"""Security: hashed and plain passwords, the password tool, request size limits and
allowed_buckets, against real SN + DN processes (POSIX). Timing is not asserted."""
import base64
import os
import re
import stat
import subprocess
import sys
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from conftest import REPO, cluster_env, make_home, start_cluster
from server.config import load_settings
from server.core.errors import BadRequest, Unauthorized
from server.sn import passwords as pw
from server.sn.auth import CACHE_SIZE, Authenticator

U1 = ("test_user1", "test")
ADMIN = ("admin", "admin")
HASHED = ("hashed_user", "s3cret pass")        # a space inside: any password can be hashed
STDIN_USER = ("stdin_user", "from-stdin")
ENTRY = re.compile(r"^pbkdf2_sha256\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
JSON_LIMIT = 1024**2            # MAX_JSON_BODY of the test cluster
REQUEST_LIMIT = 4 * 1024**2     # MAX_REQUEST_SIZE of the test cluster
F64 = "H5T_IEEE_F64LE"


def tool(*args, input=None):
    """Run the password tool (python -m server.sn.passwords)."""
    return subprocess.run([sys.executable, "-m", "server.sn.passwords", *map(str, args)],
                          cwd=REPO, input=input, capture_output=True, text=True, timeout=60)


def entries(path) -> dict:
    return pw.read_entries(path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SN + 2 DNs over POSIX: a password file with plain and hashed users (written by
    the tool), three buckets of which one is allowed besides the default one."""
    tmp = tmp_path_factory.mktemp("security")
    default = f"d{uuid.uuid4().hex[:8]}"
    other, forbidden = f"ok{uuid.uuid4().hex[:8]}", f"no{uuid.uuid4().hex[:8]}"
    env = cluster_env(tmp, "posix", bucket=default, ALLOWED_BUCKETS=f" {other} , s3://x{other}",
                      MAX_JSON_BODY="1m", MAX_REQUEST_SIZE="4m")
    root = tmp / "data"
    (root / other).mkdir()
    (root / forbidden).mkdir()
    passwd = tmp / "config" / "passwd.txt"
    passwd.write_text("# users of the test cluster\n" + passwd.read_text()
                      + "broken_user:pbkdf2_sha256$notanumber$AAAA$AAAA\n")
    assert tool("add", passwd, HASHED[0], "--password", HASHED[1]).returncode == 0
    assert tool("add", passwd, STDIN_USER[0], input=STDIN_USER[1] + "\n").returncode == 0
    c = start_cluster(tmp, env)
    make_home(c.endpoint)
    c.tmp, c.env, c.passwd = tmp, env, passwd
    c.default, c.other, c.forbidden = default, other, forbidden
    yield c
    c.stop()


def req(c, method, path="/", domain=None, auth=U1, **kw):
    params = dict(kw.pop("params", {}))
    if domain is not None:
        params["domain"] = domain
    return requests.request(method, c.endpoint + path, params=params, auth=auth,
                            timeout=60, **kw)


def new_domain(c, auth=U1):
    domain = f"/home/{auth[0]}/s{uuid.uuid4().hex[:10]}.h5"
    rsp = req(c, "PUT", domain=domain, auth=auth)
    assert rsp.status_code == 201, rsp.text
    return domain, rsp.json()["root"]


def is_json_error(rsp, status):
    assert rsp.status_code == status, rsp.text[:300]
    assert rsp.headers["Content-Type"].startswith("application/json")
    body = rsp.json()
    assert body["status"] == status and body["error"]
    return body


# ---- passwords ------------------------------------------------------------------------

def test_hash_format_and_verify():
    entry = pw.hash_password("pa:ss wörd", iterations=1000)
    assert ENTRY.match(entry) and pw.is_hashed(entry)
    assert pw.parse_hash(entry)[0] == 1000
    assert pw.verify(entry, "pa:ss wörd")
    assert not pw.verify(entry, "pa:ss word") and not pw.verify(entry, "")
    assert pw.hash_password("x", 1000) != pw.hash_password("x", 1000)      # salted
    assert pw.verify("plain", "plain") and not pw.verify("plain", "plain2")
    for bad in ("pbkdf2_sha256$x$AAAA$AAAA", "pbkdf2_sha256$10$!!$AAAA",
                "pbkdf2_sha256$0$AAAAAAAA$" + "A" * 44, "pbkdf2_sha256$1$AA"):
        with pytest.raises(ValueError):
            pw.parse_hash(bad)
    # the default cost: a login hash, once per client (cached afterwards)
    assert pw.parse_hash(pw.hash_password("x"))[0] == pw.DEFAULT_ITERATIONS


def _auth(tmp_path, text, **settings):
    path = tmp_path / "passwd.txt"
    path.write_text(text)
    return Authenticator(SimpleNamespace(password_file=str(path), groups_file="",
                                         admin_user="admin", admin_group="",
                                         allow_noauth=True, max_task_count=100, **settings))


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_authenticator_plain_and_hashed(tmp_path):
    auth = _auth(tmp_path, "# comment\nplain: pw \nhashed:%s\nbad:pbkdf2_sha256$1$$\n"
                 % pw.hash_password("hpw", 10))
    assert auth.authenticate(basic("plain", "pw"), True).user == "plain"
    assert auth.authenticate(basic("hashed", "hpw"), True).user == "hashed"
    for user, password in (("plain", "pw2"), ("hashed", "pw"), ("nobody", "pw"),
                           ("bad", "x"), ("hashed", pw.hash_password("hpw", 10))):
        with pytest.raises(Unauthorized):
            auth.authenticate(basic(user, password), False)
    for header in ("Basic !!!", "Basic é", "Basic \udcff", "Digest x", "Basic " +
                   base64.b64encode(b"\xff:\xfe").decode()):
        with pytest.raises(BadRequest):
            auth.authenticate(header, False)
    assert auth.authenticate(None, False).anonymous
    # unknown users are checked against a dummy of the file's kind: a hash here ...
    assert pw.is_hashed(auth._dummy) and pw.parse_hash(auth._dummy)[0] == 10
    # ... and a plain one where the file holds only plain entries
    assert not pw.is_hashed(_auth(tmp_path, "a:b\n")._dummy)


def test_verified_logins_are_cached_and_bounded(tmp_path):
    users = {f"u{i}": pw.hash_password(f"p{i}", 1) for i in range(CACHE_SIZE + 10)}
    auth = _auth(tmp_path, "".join(f"{u}:{e}\n" for u, e in users.items()))
    for i in range(CACHE_SIZE + 10):
        auth.authenticate(basic(f"u{i}", f"p{i}"), False)
    assert len(auth._verified) == CACHE_SIZE
    calls = []
    auth._check = lambda *a: calls.append(a) or False
    assert auth.authenticate(basic(f"u{CACHE_SIZE + 9}", f"p{CACHE_SIZE + 9}"), False).user
    assert calls == []                       # remembered: no hash computed
    with pytest.raises(Unauthorized):        # a wrong password is never remembered
        auth.authenticate(basic("u20", "wrong"), False)
    assert len(calls) == 1


def test_plain_and_hashed_users_log_in(cluster):
    for who in (U1, ADMIN, HASHED, STDIN_USER):
        rsp = req(cluster, "GET", "/about", auth=who)
        assert rsp.status_code == 200 and rsp.json()["username"] == who[0]
    for _ in range(3):       # h5pyd's many requests: the verified header is remembered
        assert req(cluster, "GET", "/", domain="/home", auth=HASHED).status_code == 200
    domain, _ = new_domain(cluster, U1)
    rsp = req(cluster, "PUT", f"/acls/{HASHED[0]}", domain=domain, auth=U1,
              json={"read": True})
    assert rsp.status_code in (200, 201), rsp.text
    assert req(cluster, "GET", "/", domain=domain, auth=HASHED).status_code == 200


@pytest.mark.parametrize("who", [("test_user1", "nope"), (HASHED[0], "s3cret"),
                                 (HASHED[0], ""), ("no_such_user", "test"),
                                 ("broken_user", "x"), (STDIN_USER[0], STDIN_USER[1] + "\n")])
def test_wrong_credentials_are_401(cluster, who):
    rsp = req(cluster, "GET", "/", domain="/home", auth=who)
    assert rsp.status_code == (401 if who[1] else 400)     # "user:" is malformed: 400
    rsp = req(cluster, "PUT", domain=f"/home/test_user1/x{uuid.uuid4().hex[:6]}", auth=who)
    assert rsp.status_code in (400, 401)


def test_tool_adds_changes_removes(tmp_path):
    path = tmp_path / "sub" / "passwd.txt"
    path.parent.mkdir()
    path.write_text("# keep me\nadmin:admin\nbob:old\n\ncarol:c\n")
    os.chmod(path, 0o640)
    out = tool("add", path, "dave", "--password", "d pw", "--iterations", "1000")
    assert out.returncode == 0 and "added dave" in out.stdout
    out = tool("add", path, "bob", input="new\n")          # no terminal: stdin's first line
    assert out.returncode == 0 and "changed bob" in out.stdout
    lines = path.read_text().splitlines()
    assert lines[0] == "# keep me" and lines[1] == "admin:admin" and lines[3] == ""
    assert lines[2].startswith("bob:pbkdf2_sha256$") and lines[-1].startswith("dave:")
    found = entries(path)
    assert list(found) == ["admin", "bob", "carol", "dave"]
    assert ENTRY.match(found["bob"]) and ENTRY.match(found["dave"])
    assert pw.verify(found["bob"], "new") and pw.verify(found["dave"], "d pw")
    assert pw.parse_hash(found["dave"])[0] == 1000
    assert stat.S_IMODE(path.stat().st_mode) == 0o640                 # permissions kept
    assert not [p for p in path.parent.iterdir() if p.name != "passwd.txt"]   # no temp left
    listed = tool("list", path).stdout.splitlines()
    assert listed == ["admin\tplain", f"bob\tpbkdf2_sha256 ({pw.DEFAULT_ITERATIONS} iterations)",
                      "carol\tplain", "dave\tpbkdf2_sha256 (1000 iterations)"]
    out = tool("remove", path, "carol")
    assert out.returncode == 0 and list(entries(path)) == ["admin", "bob", "dave"]
    assert tool("remove", path, "carol").returncode == 1
    assert tool("add", path, "bad:name", "--password", "x").returncode == 2
    assert tool("add", path, "eve", input="\n").returncode == 2        # empty password
    fresh = tmp_path / "new.txt"
    assert tool("add", fresh, "first", "--password", "p").returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert tool("list", tmp_path / "missing.txt").returncode == 1


def test_restart_picks_up_changed_users(cluster):
    """Change, add and remove users with the tool; a restarted SN serves the new file.
    Restarted without ALLOWED_BUCKETS, with HSDS's ALLOW_ANY_BUCKET_WRITE=false: every
    bucket can be read again, only the default one written."""
    passwd = cluster.passwd
    assert tool("add", passwd, HASHED[0], "--password", "changed").returncode == 0
    assert tool("add", passwd, "test_user2", "--password", "now hashed").returncode == 0
    assert tool("add", passwd, "late_user", "--password", "late").returncode == 0
    assert tool("remove", passwd, STDIN_USER[0]).returncode == 0
    found = entries(passwd)
    assert ENTRY.match(found["test_user2"]) and STDIN_USER[0] not in found
    assert found["test_user1"] == "test"                    # plain entries stay as they were
    # the running server still has the old file
    assert req(cluster, "GET", "/about", auth=HASHED).status_code == 200
    cluster.stop()
    env = {k: v for k, v in cluster.env.items() if k != "ALLOWED_BUCKETS"}
    env["ALLOW_ANY_BUCKET_WRITE"] = "false"
    restarted = start_cluster(cluster.tmp, env)
    try:
        assert req(restarted, "GET", "/about", auth=HASHED).status_code == 401
        assert req(restarted, "GET", "/about", auth=(HASHED[0], "changed")).status_code == 200
        assert req(restarted, "GET", "/about", auth=("test_user2", "test")).status_code == 401
        assert req(restarted, "GET", "/about",
                   auth=("test_user2", "now hashed")).json()["username"] == "test_user2"
        assert req(restarted, "GET", "/about", auth=("late_user", "late")).status_code == 200
        assert req(restarted, "GET", "/about", auth=STDIN_USER).status_code == 401
        assert req(restarted, "GET", "/about", auth=U1).status_code == 200
        rsp = req(restarted, "GET", "/domains", params={"bucket": cluster.forbidden})
        assert rsp.status_code == 200 and rsp.json()["domains"] == []
        body = is_json_error(req(restarted, "PUT", domain="/home", auth=ADMIN, json={
            "folder": True}, params={"bucket": cluster.forbidden}), 403)
        assert "read-only" in body["error"]
        rsp = req(restarted, "PUT", domain=f"/home/test_user1/w{uuid.uuid4().hex[:6]}")
        assert rsp.status_code == 201, rsp.text
    finally:
        restarted.stop()
        start_cluster(cluster.tmp, cluster.env)      # the module's cluster, for later tests


# ---- size limits ----------------------------------------------------------------------

def test_json_bodies_over_max_json_body_are_413(cluster):
    domain, root = new_domain(cluster)
    big = b'{"link": {"id": "%s", "name": "g"}, "pad": "' % root.encode() \
        + b"x" * (JSON_LIMIT + 10) + b'"}'
    headers = {"Content-Type": "application/json"}
    is_json_error(req(cluster, "POST", "/groups", domain=domain, data=big,
                      headers=headers), 413)

    def chunked():                     # no Content-Length: stopped while reading
        for i in range(0, len(big), 256 * 1024):
            yield big[i:i + 256 * 1024]
    is_json_error(req(cluster, "POST", "/groups", domain=domain, data=chunked(),
                      headers=headers), 413)
    # a content type does not lift the limit where the route reads JSON
    is_json_error(req(cluster, "POST", "/groups", domain=domain, data=big,
                      headers={"Content-Type": "application/octet-stream"}), 413)
    is_json_error(req(cluster, "PUT", f"/groups/{root}/attributes/a", domain=domain,
                      data=big, headers=headers), 413)
    # below the limit all is well
    rsp = req(cluster, "POST", "/groups", domain=domain, json={"pad": "x" * 1000})
    assert rsp.status_code == 400, rsp.text                 # read: an unknown key
    assert req(cluster, "POST", "/groups", domain=domain, json={}).status_code == 201


def test_json_nested_past_64_levels_is_400(cluster):
    """Deep nesting is refused before any handler walks it; 64 levels are parsed."""
    domain, _ = new_domain(cluster)
    headers = {"Content-Type": "application/json"}
    for depth, deep in ((65, True), (64, False), (200, True)):
        body = "[" * depth + "]" * depth
        rsp = req(cluster, "POST", "/groups", domain=domain, data=body, headers=headers)
        is_json_error(rsp, 400)
        assert ("nested deeper than 64" in rsp.json()["error"]) == deep, (depth, rsp.text)


def test_dataset_values_keep_max_request_size(cluster):
    domain, root = new_domain(cluster)
    rsp = req(cluster, "POST", "/datasets", domain=domain,
              json={"type": F64, "shape": [300_000]})
    assert rsp.status_code == 201, rsp.text
    did = rsp.json()["id"]
    values = [float(i % 7) for i in range(300_000)]          # 1.5 MB of JSON
    rsp = req(cluster, "PUT", f"/datasets/{did}/value", domain=domain, json={"value": values})
    assert rsp.status_code == 200, rsp.text
    arr = np.arange(300_000, dtype="<f8")                     # 2.4 MB binary
    rsp = req(cluster, "PUT", f"/datasets/{did}/value", domain=domain, data=arr.tobytes(),
              headers={"Content-Type": "application/octet-stream"})
    assert rsp.status_code == 200, rsp.text
    got = req(cluster, "GET", f"/datasets/{did}/value", domain=domain,
              headers={"Accept": "application/octet-stream"})
    assert np.array_equal(np.frombuffer(got.content, "<f8"), arr)
    too_big = np.zeros(REQUEST_LIMIT // 8 + 1024, "<f8").tobytes()
    body = is_json_error(req(cluster, "PUT", f"/datasets/{did}/value", domain=domain,
                             data=too_big,
                             headers={"Content-Type": "application/octet-stream"}), 413)
    assert "bytes" in body["error"] or "Too Large" in body["error"]
    # a binary attribute value is data too: over max_json_body, under max_request_size
    rsp = req(cluster, "PUT", f"/groups/{root}/attributes/big", domain=domain,
              json={"type": F64, "shape": [300_000]})
    assert rsp.status_code == 201, rsp.text
    rsp = req(cluster, "PUT", f"/groups/{root}/attributes/big/value", domain=domain,
              data=arr.tobytes(), headers={"Content-Type": "application/octet-stream"})
    assert rsp.status_code == 200, rsp.text


def test_oversize_lines_and_headers_are_not_500(cluster):
    long_domain = "/home/test_user1/" + "a" * 20_000
    rsp = req(cluster, "GET", domain=long_domain)
    assert 400 <= rsp.status_code < 500
    rsp = req(cluster, "GET", "/about", headers={"X-Big": "b" * 20_000})
    assert 400 <= rsp.status_code < 500
    rsp = req(cluster, "GET", "/about", headers={f"X-H{i}": "h" for i in range(300)})
    assert 400 <= rsp.status_code < 500
    rsp = req(cluster, "GET", domain="/home/test_user1/" + "c" * 5000)   # under the line limit
    is_json_error(rsp, 400)
    rsp = requests.get(cluster.endpoint + "/", params={"domain": "/home"}, timeout=30,
                       headers={"Authorization": "Basic \xe9t\xe9".encode("latin-1")})
    is_json_error(rsp, 400)
    assert req(cluster, "GET", "/about").status_code == 200             # still serving


def test_data_node_limit_follows_max_request_size():
    from server.dn.app import max_body
    base = load_settings(env={})
    assert max_body(base) == 2 * base.max_request_size + 64 * 1024**2
    small = base.replace(max_request_size=1024**2)
    assert max_body(small) >= 2 * 16 * 1024**2          # the SN's batches of values fit
    assert max_body(base.replace(max_request_size=1024**3)) > 2 * 1024**3


# ---- allowed_buckets ------------------------------------------------------------------

def test_settings():
    s = load_settings(env={"ALLOWED_BUCKETS": " a, b ,,", "MAX_JSON_BODY": "2m"})
    assert s.allowed_buckets == ["a", "b"] and s.max_json_body == 2 * 1024**2
    s = load_settings(env={})
    assert s.allowed_buckets == [] and s.max_json_body == 16 * 1024**2


def test_bucket_rules():
    from server.sn.params import bucket_allowed, limits_buckets
    s = load_settings(env={"BUCKET_NAME": "main"})
    assert not limits_buckets(s) and bucket_allowed("any", s, write=True)
    s = s.replace(allowed_buckets=["b1", "s3://b2"])
    assert limits_buckets(s)
    assert all(bucket_allowed(b, s, True) for b in ("main", "b1", "b2"))
    assert not bucket_allowed("b3", s) and not bucket_allowed("b3", s, write=True)
    # HSDS's switches: only the default bucket for reads / for writes
    ro = s.replace(allowed_buckets=[], allow_any_bucket_write=False)
    assert limits_buckets(ro) and bucket_allowed("x", ro) and not bucket_allowed("x", ro, True)
    assert bucket_allowed("main", ro, True)
    no = s.replace(allow_any_bucket_read=False)
    assert not bucket_allowed("b1", no) and bucket_allowed("b1", no, True)   # as HSDS
    assert bucket_allowed("main", no)


def test_allowed_buckets(cluster):
    other, forbidden = cluster.other, cluster.forbidden
    # the default bucket, though not listed, and the listed one are served
    assert req(cluster, "GET", "/", domain="/home").status_code == 200
    assert req(cluster, "GET", "/", domain="/home",
               params={"bucket": cluster.default}).status_code == 200
    rsp = req(cluster, "PUT", domain="/home", auth=ADMIN, params={"bucket": other},
              json={"folder": True})
    assert rsp.status_code == 201, rsp.text
    assert req(cluster, "GET", "/", domain="/home", params={"bucket": other}).status_code == 200
    assert req(cluster, "GET", "/", domain=f"{other}/home").status_code == 200
    assert req(cluster, "GET", "/", domain=f"s3://{other}/home").status_code == 200
    assert req(cluster, "GET", "/domains", params={"bucket": other}).status_code == 200
    # any other bucket: 403, whichever way it is named, before anything is read
    for kw in ({"domain": "/home", "params": {"bucket": forbidden}},
               {"domain": f"{forbidden}/home"},
               {"domain": "/home", "headers": {"X-Hdf-bucket": forbidden}}):
        is_json_error(req(cluster, "GET", "/", **kw), 403)
    is_json_error(req(cluster, "GET", "/domains", params={"bucket": forbidden}), 403)
    is_json_error(req(cluster, "PUT", domain="/home", auth=ADMIN,
                      params={"bucket": forbidden}, json={"folder": True}), 403)
    assert not (cluster.tmp / "data" / forbidden / "home").exists()
    domain, root = new_domain(cluster)
    is_json_error(req(cluster, "GET", f"/groups/{root}", domain=domain,
                      params={"bucket": forbidden}), 403)
    # a linked domain in another bucket
    linked = f"/home/test_user1/l{uuid.uuid4().hex[:8]}.h5"
    is_json_error(req(cluster, "PUT", domain=linked, json={
        "linked_domain": domain, "linked_bucket": forbidden}), 403)
    # anonymous and unauthenticated requests get their 401 first
    assert req(cluster, "GET", "/", domain="/home", auth=("test_user1", "bad"),
               params={"bucket": forbidden}).status_code == 401
