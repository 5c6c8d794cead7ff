"""A bucket written by stock HSDS 1.0.2 is served unchanged (domains, folders, ACLs)."""
import json

import h5pyd
import pytest
import requests

from conftest import FIXTURE, cluster_env, copy_fixture, start_cluster

U1 = ("test_user1", "test")


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
