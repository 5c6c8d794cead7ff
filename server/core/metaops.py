"""Changes to stored JSON documents, applied by the owning data node.

Each op is a pure function (doc, args) -> (changed, result) that edits doc in
place. The DN applies it while no other change to that document can run, so
read-modify-write races between requests do not exist. New ops register here.
"""
from . import clock
from .acl import entry

OPS = {}


def op(fn):
    OPS[fn.__name__] = fn
    return fn


@op
def set_acl(doc: dict, args: dict):
    """Create or change one user's ACL entry; it records the bucket/domain (HSDS does)."""
    acls = doc.setdefault("acls", {})
    current = acls.setdefault(args["user"], entry(False))
    current.update(args["flags"])
    current["domain"] = args["domain"]
    doc["lastModified"] = clock.now()
    return True, {}


def apply(name: str, doc: dict, args: dict):
    return OPS[name](doc, args)
