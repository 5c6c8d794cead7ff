"""Domains, folders, ACLs and auth against real SN + DN processes (POSIX and S3)."""
import subprocess
import uuid

import pytest
import requests

from conftest import run_h5pyd_client

U1 = ("test_user1", "test")
U2 = ("test_user2", "test")
ADMIN = ("admin", "admin")


def unique(prefix="/home/test_user1"):
    return f"{prefix}/t{uuid.uuid4().hex[:10]}"


def req(server, method, path="/", domain=None, auth=U1, **kw):
    params = dict(kw.pop("params", {}))
    if domain is not None:
        params["domain"] = domain
    return requests.request(method, server.endpoint + path, params=params, auth=auth,
                            timeout=30, **kw)


def make_domain(server, domain, auth=U1, **body):
    rsp = req(server, "PUT", domain=domain, auth=auth, json=body or None)
    assert rsp.status_code == 201, rsp.text
    return rsp.json()


# ---- service ----------------------------------------------------------------

def test_about_and_info(server):
    rsp = requests.get(server.endpoint + "/about", timeout=10)
    assert rsp.status_code == 200
    assert rsp.headers["Content-Type"] == "application/json; charset=utf-8"
    about = rsp.json()
    assert about["state"] == "READY" and about["username"] == "anonymous"
    assert about["hsds_version"].startswith("1.") and about["node_count"] == 2
    assert "python" not in rsp.headers["Server"].lower()
    assert rsp.headers["X-XSS-Protection"] == "1; mode=block"
    assert req(server, "GET", "/about", auth=U1).json()["username"] == "test_user1"
    assert req(server, "GET", "/about", auth=ADMIN).json()["isadmin"] is True
    assert req(server, "GET", "/about", auth=("test_user1", "nope")).status_code == 401
    node = requests.get(server.endpoint + "/info", timeout=10).json()["node"]
    assert node["id"].startswith("sn-") and node["type"] == "sn" and node["state"] == "READY"
    assert "node_number" not in node


def test_cors_preflight(server):
    rsp = requests.options(server.endpoint + "/about", timeout=10, headers={
        "Origin": "*", "Access-Control-Request-Method": "GET"})
    assert rsp.status_code == 200
    assert rsp.headers["Access-Control-Allow-Origin"] == "*"
    assert rsp.headers["Access-Control-Allow-Methods"] == "GET"


# ---- domains ----------------------------------------------------------------

def test_create_get_delete_domain(server):
    domain = unique()
    created = make_domain(server, domain)
    for key in ("root", "owner", "acls", "created", "lastModified", "version", "limits",
                "compressors"):
        assert key in created
    assert created["owner"] == "test_user1" and len(created["root"]) == 38
    rsp = req(server, "GET", domain=domain, params={"getdnids": 1})
    assert rsp.status_code == 200
    assert rsp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = rsp.json()
    assert body["root"] == created["root"] and body["class"] == "domain"
    assert body["dn_ids"] == ["dn-001", "dn-002"]
    assert len(body["hrefs"]) == 7 and "acls" not in body and "num_groups" not in body
    assert "domain_objs" not in body
    # the root group answers
    rsp = req(server, "GET", f"/groups/{created['root']}", domain=domain)
    assert rsp.status_code == 200 and rsp.json()["id"] == created["root"]
    # a second create conflicts
    assert req(server, "PUT", domain=domain).status_code == 409
    # delete: 200, then 410; re-create gives a new root
    assert req(server, "DELETE", domain=domain).status_code == 200
    assert req(server, "GET", domain=domain).status_code == 410
    again = make_domain(server, domain)
    assert again["root"] != created["root"]


def test_getobjs_lists_root(server):
    domain = unique()
    root = make_domain(server, domain)["root"]
    body = req(server, "GET", domain=domain,
               params={"getobjs": "T", "include_attrs": "T"}).json()
    objs = body["domain_objs"]
    assert set(objs) == {root}
    assert objs[root]["lastModified"] and objs[root]["id"] == root
    assert objs[root]["attributes"] == {}


def test_flush_dialects(server):
    domain = unique()
    make_domain(server, domain)
    rsp = req(server, "PUT", domain=domain, json={"flush": 1, "getdnids": 1})
    assert rsp.status_code == 200 and rsp.json()["dn_ids"] == ["dn-001", "dn-002"]
    rsp = req(server, "PUT", domain=domain, params={"flush": 1}, data="null")
    assert rsp.status_code == 204 and rsp.content == b""


@pytest.mark.parametrize("bad", ["bad_domain.h5", "test_user1.home", "/home/test_user1/x/",
                                 "/home//x.h5", "ab"])
def test_invalid_domain_names(server, bad):
    assert req(server, "GET", domain=bad).status_code == 400
    assert req(server, "PUT", domain=bad).status_code == 400


def test_host_param_and_bucket_rules(server):
    assert req(server, "GET", params={"host": "x.h5"}).status_code == 400
    assert req(server, "GET", domain="/home/test_user1",
               params={"bucket": "bad/bucket"}).status_code == 400
    # the bucket can ride in the domain name
    rsp = req(server, "GET", domain=f"{server.bucket}/home/test_user1")
    assert rsp.status_code == 200 and rsp.json()["class"] == "folder"


def test_auth_rules(server):
    domain = unique()
    make_domain(server, domain)
    assert req(server, "GET", domain=domain, auth=("test_user1", "bad")).status_code == 401
    assert req(server, "GET", domain=domain, auth=("nobody", "xyz")).status_code == 401
    assert req(server, "GET", domain=domain, auth=U2).status_code == 403
    # anonymous: reads run as "default" (no grant -> 403); writes need credentials
    assert req(server, "GET", domain=domain, auth=None).status_code == 403
    assert req(server, "DELETE", domain=domain, auth=None).status_code == 401
    assert req(server, "PUT", domain=unique(), auth=None).status_code == 401
    # malformed header -> 400
    rsp = requests.get(server.endpoint + "/", params={"domain": domain}, timeout=10,
                       headers={"Authorization": "Basic !!!"})
    assert rsp.status_code == 400
    # errors are JSON with a message and no statusCode key
    body = req(server, "GET", domain=domain, auth=U2).json()
    assert "error" in body and "statusCode" not in body
    # the folder is public-read: anonymous may read it
    assert req(server, "GET", domain="/home/test_user1", auth=None).status_code == 200


def test_create_rules(server):
    # top-level domains are the admin's
    assert req(server, "PUT", domain=f"/top{uuid.uuid4().hex[:6]}").status_code == 403
    # the parent must exist and be a folder
    assert req(server, "PUT", domain="/home/test_user1/notafolder/x.h5").status_code == 404
    domain = unique()
    make_domain(server, domain)
    assert req(server, "PUT", domain=domain + "/child.h5").status_code == 400
    # another user's folder
    assert req(server, "PUT", domain=unique(), auth=U2).status_code == 403
    # owner may be set by an admin only
    assert req(server, "PUT", domain=unique(), json={"owner": "test_user2"}).status_code == 403
    made = make_domain(server, unique("/home/test_user2"), auth=ADMIN, owner="test_user2")
    assert made["owner"] == "test_user2"


def test_folders_and_listing(server):
    folder = unique()
    made = make_domain(server, folder, folder=True)
    assert "root" not in made
    rsp = req(server, "GET", domain=folder).json()
    assert rsp["class"] == "folder" and "root" not in rsp and len(rsp["hrefs"]) == 4
    for i in range(5):
        make_domain(server, f"{folder}/domain_{i}.h5")
    make_domain(server, f"{folder}/sub", folder=True)
    listing = req(server, "GET", "/domains", domain=folder + "/").json()["domains"]
    names = [d["name"] for d in listing]
    assert names == [f"{folder}/domain_{i}.h5" for i in range(5)] + [f"{folder}/sub"]
    assert listing[0]["class"] == "domain" and listing[0]["owner"] == "test_user1"
    assert listing[-1]["class"] == "folder" and "root" not in listing[-1]
    for item in listing:
        assert not {"limits", "version", "compressors", "size"} & set(item)
    page = req(server, "GET", "/domains", domain=folder + "/", params={"Limit": 2}).json()
    assert [d["name"] for d in page["domains"]] == names[:2]
    page = req(server, "GET", "/domains", domain=folder + "/",
               params={"Limit": 2, "Marker": names[1]}).json()
    assert [d["name"] for d in page["domains"]] == names[2:4]
    page = req(server, "GET", "/domains", domain=folder + "/",
               params={"pattern": "domain_[0-2].h5"}).json()
    assert [d["name"] for d in page["domains"]] == names[:3]
    verbose = req(server, "GET", "/domains", domain=folder + "/",
                  params={"verbose": 1}).json()["domains"]
    assert "num_objects" in verbose[0] and "total_size" in verbose[0]
    # without the trailing slash the same folder is listed; a missing one is empty
    same = req(server, "GET", "/domains", domain=folder).json()["domains"]
    assert [d["name"] for d in same] == names
    assert req(server, "GET", "/domains", domain=folder + "/nope/").json()["domains"] == []
    assert req(server, "GET", "/domains", domain=folder + "/",
               params={"Limit": "x"}).status_code == 400
    # a folder with children cannot go
    assert req(server, "DELETE", domain=folder).status_code == 409
    # top level lists /home, and no stray db/ entry
    top = req(server, "GET", "/domains").json()["domains"]
    assert "/home" in [d["name"] for d in top] and "/db" not in [d["name"] for d in top]
    top = req(server, "GET", "/").json()["domains"]
    assert "/home" in [d["name"] for d in top]


def test_domain_queries(server):
    """GET /domains?query=: root-group scalar attributes decide which domains are listed."""
    folder = unique()
    make_domain(server, folder, folder=True)
    for i in range(6):
        root = make_domain(server, f"{folder}/domain_{i}.h5")["root"]
        attrs = {"attr1": {"type": "H5T_STD_I32LE", "value": i * 3},
                 "attr2": {"type": {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                                    "strPad": "H5T_STR_NULLPAD", "length": 9},
                           "value": f"A000000{i}"}}
        if i == 5:
            del attrs["attr1"]                       # lacks it: never matches on attr1
        rsp = req(server, "PUT", f"/groups/{root}/attributes", domain=f"{folder}/domain_{i}.h5",
                  json={"attributes": attrs})
        assert rsp.status_code == 201, rsp.text
    make_domain(server, f"{folder}/sub", folder=True)

    def names(query, **params):
        rsp = req(server, "GET", "/domains", domain=folder + "/",
                  params={"query": query, **params})
        assert rsp.status_code == 200, rsp.text
        return [d["name"].rsplit("/", 1)[1] for d in rsp.json()["domains"]]

    assert names("attr1 > 7") == ["domain_3.h5", "domain_4.h5"]
    assert names("attr2 != 'A0000004'") == [f"domain_{i}.h5" for i in (0, 1, 2, 3, 5)]
    assert names("attr1 > 7 AND attr2 != 'A0000004'") == ["domain_3.h5"]
    assert names("(attr1 < 3 or attr1 >= 12) & attr2 != 'x'") == ["domain_0.h5", "domain_4.h5"]
    assert names("attr1 != 6") == [f"domain_{i}.h5" for i in (0, 1, 3, 4)]
    assert names("attr1 > 7", Limit=1) == ["domain_3.h5"]
    assert names("nothing == 1") == []
    for bad in ("attr1 >", "attr1 = 3", "(attr1 > 1", "1 < 2", "attr1 > 1 AND"):
        rsp = req(server, "GET", "/domains", domain=folder + "/", params={"query": bad})
        assert rsp.status_code == 400 and "query" in rsp.json()["error"], bad


def test_acls(server):
    domain = unique()
    make_domain(server, domain)
    acls = req(server, "GET", "/acls", domain=domain).json()["acls"]
    assert [a["userName"] for a in acls] == ["test_user1"]
    owner = req(server, "GET", "/acls/test_user1", domain=domain).json()["acl"]
    assert len(owner) == 7 and all(owner[k] for k in ("read", "update", "updateACL"))
    assert req(server, "GET", "/acls/test_user2", domain=domain).status_code == 404
    # test_user2 cannot read the ACLs nor change them
    assert req(server, "GET", "/acls", domain=domain, auth=U2).status_code == 403
    grant = {"create": False, "read": True, "update": False, "delete": False,
             "readACL": False, "updateACL": False}
    assert req(server, "PUT", "/acls/test_user2", domain=domain, auth=U2,
               json=grant).status_code == 403
    # the owner grants read
    rsp = req(server, "PUT", "/acls/test_user2", domain=domain, json=grant)
    assert rsp.status_code == 201
    acl = req(server, "GET", "/acls/test_user2", domain=domain).json()["acl"]
    assert len(acl) == 8 and acl["read"] is True and acl["update"] is False
    assert acl["domain"] == f"{server.bucket}{domain}"
    assert req(server, "GET", domain=domain, auth=U2).status_code == 200
    assert req(server, "GET", "/acls/test_user2", domain=domain, auth=U2).status_code == 200
    assert req(server, "DELETE", domain=domain, auth=U2).status_code == 403
    # a partial update keeps the rest; an explicit deny beats default
    assert req(server, "PUT", "/acls/test_user2", domain=domain,
               json={"read": False}).status_code == 201
    assert req(server, "GET", domain=domain, auth=U2).status_code == 403
    assert req(server, "PUT", "/acls/default", domain=domain,
               json={"read": True}).status_code == 201
    assert req(server, "GET", domain=domain, auth=None).status_code == 200
    assert req(server, "GET", domain=domain, auth=U2).status_code == 403
    # group grants
    assert req(server, "PUT", "/acls/g:test_group", domain=domain,
               json={"update": True}).status_code == 201
    # bad bodies
    for bad in ({"read": "yes"}, {"bogus": True}, None):
        assert req(server, "PUT", "/acls/x", domain=domain, json=bad).status_code == 400
    acls = req(server, "GET", "/acls", domain=domain).json()["acls"]
    assert [a["userName"] for a in acls] == ["default", "g:test_group", "test_user1",
                                               "test_user2"]


def test_acl_inheritance(server):
    folder = unique()
    make_domain(server, folder, folder=True)
    req(server, "PUT", "/acls/test_user2", domain=folder, json={"read": True, "create": True})
    child = make_domain(server, f"{folder}/x.h5")
    assert child["acls"]["test_user2"]["read"] is True
    assert "default" not in child["acls"]
    # test_user2 may now create inside the folder
    assert req(server, "PUT", domain=f"{folder}/by_user2.h5", auth=U2).status_code == 201


def test_linked_domain(server):
    target = unique()
    root = make_domain(server, target)["root"]
    linked = unique()
    made = make_domain(server, linked, linked_domain=target)
    assert made["root"] == root
    assert req(server, "DELETE", domain=target, json={"keep_root": 1}).status_code == 200
    assert req(server, "GET", f"/groups/{root}", domain=linked).status_code == 200


def test_group_id_rules(server):
    domain = unique()
    root = make_domain(server, domain)["root"]
    other = make_domain(server, unique())["root"]
    assert req(server, "GET", "/groups/foobar", domain=domain).status_code == 400
    assert req(server, "GET", f"/groups/d{root[1:]}", domain=domain).status_code == 400
    v1 = "g-0568d8c5-a77e-11e4-9f7a-3c15c2da029e"
    assert req(server, "GET", f"/groups/{v1}", domain=domain).status_code == 404
    assert req(server, "GET", f"/groups/{other}", domain=domain).status_code == 400
    assert req(server, "GET", f"/groups/{root}", domain=domain, auth=U2).status_code == 403
    assert req(server, "GET", f"/groups/{root}").status_code == 400   # no domain


def test_unknown_routes(server):
    assert req(server, "GET", "/nothing/here").status_code == 404
    assert req(server, "PATCH", domain="/home/test_user1").status_code == 405


@pytest.mark.parametrize("client", ["h5pyd-1.0.0", "h5pyd-0.24.0"])
def test_h5pyd_domain_scenario(server, client):
    python, _, _ = run_h5pyd_client(server, client, "h5pyd_domains.py")
    version = subprocess.run([python, "-c", "import h5pyd; print(h5pyd.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == client.split("-")[1]
