"""The domain scenario, run by whichever h5pyd the interpreter has (1.0.0 or 0.24.0).

    python h5pyd_domains.py ENDPOINT FOLDER      (FOLDER: an existing folder of test_user1)

Prints one 'ok <step>' line per step and exits non-zero at the first failure.
"""
import sys

import h5pyd

endpoint, folder = sys.argv[1], sys.argv[2].rstrip("/")
user1 = dict(endpoint=endpoint, username="test_user1", password="test")
user2 = dict(endpoint=endpoint, username="test_user2", password="test")


def step(name):
    print("ok", name, flush=True)


path = f"{folder}/a.h5"
f = h5pyd.File(path, "w", **user1)
root_id = f.id.id
assert root_id.startswith("g-") and len(root_id) == 38, root_id
f.close()
step("create")

f = h5pyd.File(path, "r", **user1)
assert f.id.id == root_id
assert len(f) == 0 and list(f) == []
assert f.owner == "test_user1"
f.close()
step("reopen-r")

f = h5pyd.File(path, "a", **user1)
assert f.id.id == root_id
f.flush()
f.close()
step("reopen-a-flush")

f = h5pyd.File(path, "w", **user1)      # truncate: a new root
assert f.id.id != root_id
f.close()
step("recreate-w")

folder_obj = h5pyd.Folder(folder + "/", **user1)
names = list(folder_obj)
assert "a.h5" in names, names
folder_obj.close()
step("folder-list")

with h5pyd.File(f"{folder}/tagged.h5", "w", **user1) as t:
    t.attrs["rank"] = 7
    t.attrs["label"] = "survey"
for query, expected in [("rank > 5 AND label == 'survey'", ["tagged.h5"]), ("rank < 5", [])]:
    folder_obj = h5pyd.Folder(folder + "/", query=query, **user1)
    assert list(folder_obj) == expected, (query, list(folder_obj))
    folder_obj.close()
step("folder-query")

try:
    h5pyd.File(path, "r", **user2)
    raise AssertionError("test_user2 read test_user1's domain")
except OSError as e:
    assert "403" in str(e) or "Forbidden" in str(e) or getattr(e, "errno", None) == 403, e
step("other-user-403")

try:
    h5pyd.File(path, "r", endpoint=endpoint, username="test_user1", password="wrong")
    raise AssertionError("bad password accepted")
except OSError as e:
    assert "401" in str(e) or getattr(e, "errno", None) == 401, e
step("bad-password-401")

try:
    h5pyd.File(f"{folder}/missing.h5", "r", **user1)
    raise AssertionError("missing domain opened")
except OSError as e:
    assert "404" in str(e) or getattr(e, "errno", None) == 404 or "not found" in str(e).lower(), e
step("missing-404")

folder_obj = h5pyd.Folder(folder + "/", mode="a", **user1)
del folder_obj["a.h5"]
folder_obj.close()
folder_obj = h5pyd.Folder(folder + "/", **user1)
assert "a.h5" not in list(folder_obj)
folder_obj.close()
try:
    h5pyd.File(path, "r", **user1)
    raise AssertionError("deleted domain opened")
except OSError as e:
    assert any(c in str(e) for c in ("404", "410")) or getattr(e, "errno", None) in (404, 410), e
step("delete")
print("all ok")
