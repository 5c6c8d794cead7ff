"""A bucket written by stock HSDS 1.0.2 is served unchanged (domains, folders, ACLs)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5pyd
import pytest
import requests

from conftest import FIXTURE, REPO, cluster_env, copy_fixture, start_cluster
from server.core.ids import object_key

U1 = ("test_user1", "test")
H5PYD_024 = REPO / ".venv-h5pyd024" / "bin" / "python"
CLIENT = Path(__file__).parent / "clients" / "h5pyd_fixture.py"


@pytest.fixture(scope="module")
def expected():
    path = FIXTURE / "expected.json"
    if not path.is_file():
        pytest.skip("shared fixture not present")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def hsds_bucket(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fixture")
    root = copy_fixture(tmp / "root")
    cluster = start_cluster(tmp, cluster_env(tmp, "posix", root_dir=root))
    cluster.root_dir = root
    yield cluster
    cluster.stop()


def test_lists_the_users_folder(hsds_bucket):
    rsp = requests.get(hsds_bucket.endpoint + "/domains", auth=U1, timeout=10,
                       params={"domain": "/home/test_user1/"})
    items = {d["name"]: d for d in rsp.json()["domains"]}
    assert list(items) == ["/home/test_user1/fixture.h5", "/home/test_user1/subfolder"]
    assert items["/home/test_user1/fixture.h5"]["class"] == "domain"
    assert items["/home/test_user1/subfolder"]["class"] == "folder"
    folder = h5pyd.Folder("/home/test_user1/", endpoint=hsds_bucket.endpoint,
                          username="test_user1", password="test")
    assert sorted(folder) == ["fixture.h5", "subfolder"]
    top = requests.get(hsds_bucket.endpoint + "/domains", auth=U1, timeout=10).json()
    assert [d["name"] for d in top["domains"]] == ["/home"]   # not db/ nor ref/


def test_opens_fixture_with_owner_and_acls(hsds_bucket, expected):
    f = h5pyd.File(expected["domain"], "r", endpoint=hsds_bucket.endpoint,
                   username="test_user1", password="test")
    assert f.id.id == expected["root_id"]
    assert f.owner == "test_user1"
    top_names = sorted(p[1:] for p in expected["objects"] if p.count("/") == 1 and p != "/")
    assert sorted(f) == top_names
    f.close()
    rsp = requests.get(hsds_bucket.endpoint + "/acls", auth=U1, timeout=10,
                       params={"domain": expected["domain"]})
    assert rsp.status_code == 200
    assert rsp.json()["acls"] == expected["acls_via_rest"]
    # the recorded grants work: test_user2 may read, and so may the group
    rsp = requests.get(hsds_bucket.endpoint + "/", auth=("test_user2", "test"), timeout=10,
                       params={"domain": expected["domain"]})
    assert rsp.status_code == 200 and rsp.json()["root"] == expected["root_id"]


def test_getobjs_walks_the_whole_domain(hsds_bucket, expected):
    rsp = requests.get(hsds_bucket.endpoint + "/", auth=U1, timeout=10, params={
        "domain": expected["domain"], "getobjs": "T", "include_attrs": "T"})
    objs = rsp.json()["domain_objs"]
    ids = {o["id"] for o in expected["objects"].values() if "id" in o}
    assert ids <= set(objs)
    for obj in objs.values():
        assert "id" in obj and "lastModified" in obj
    root = objs[expected["root_id"]]
    assert set(root["attributes"]) == set(expected["objects"]["/"]["attributes"])


@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_every_group_link_attribute_and_type_reads_back(hsds_bucket, client):
    python = sys.executable if client == "h5pyd-1.0.0" else str(H5PYD_024)
    if not Path(python).exists():
        pytest.skip("h5pyd 0.24.0 venv missing (./testall.sh creates it)")
    proc = subprocess.run([python, str(CLIENT), hsds_bucket.endpoint,
                           str(FIXTURE / "expected.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all ok" in proc.stdout


def test_new_objects_have_the_keys_hsds_writes(hsds_bucket, expected):
    """Objects h5cloud adds to the HSDS bucket carry the same JSON keys as HSDS's own."""
    base = hsds_bucket.endpoint
    params = {"domain": expected["domain"]}
    rsp = requests.post(base + "/groups", params=params, auth=U1, timeout=10, json={
        "link": {"id": expected["root_id"], "name": f"new{os.getpid()}"}})
    assert rsp.status_code == 201
    gid = rsp.json()["id"]
    requests.put(f"{base}/groups/{gid}/attributes/a", params=params, auth=U1, timeout=10,
                 json={"type": "H5T_STD_I64LE", "value": 3}).raise_for_status()
    requests.put(f"{base}/groups/{gid}/links/s", params=params, auth=U1, timeout=10,
                 json={"h5path": "/g1"}).raise_for_status()
    rsp = requests.post(base + "/datatypes", params=params, auth=U1, timeout=10,
                        json={"type": "H5T_IEEE_F32LE"})
    tid = rsp.json()["id"]
    requests.put(base + "/", params=params, auth=U1, timeout=10,
                 json={"flush": 1}).raise_for_status()
    bucket = hsds_bucket.root_dir / "hsdstest"
    theirs = json.loads((bucket / expected["objects"]["/g1/g1.1/g1.1.1"]["key"]).read_text())
    ours = json.loads((bucket / object_key(gid)).read_text())
    assert list(ours) == list(theirs)
    assert list(ours["attributes"]["a"]) == list(theirs["attributes"]["depth"])
    assert set(ours["links"]["s"]) == {"class", "h5path", "created"}
    their_type = json.loads((bucket / expected["objects"]["/types/ctype"]["key"]).read_text())
    our_type = json.loads((bucket / object_key(tid)).read_text())
    assert sorted(our_type) == sorted(their_type)
