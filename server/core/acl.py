"""Domain ACLs (REST_API.md §2.5): who may do what, and what a new domain gets."""
from .errors import BadRequest

ACTIONS = ("create", "read", "update", "delete", "readACL", "updateACL")
DEFAULT = "default"


def entry(value: bool = False, **flags) -> dict:
    acl = {action: value for action in ACTIONS}
    acl.update(flags)
    return acl


def is_allowed(acls: dict, user: str, groups, action: str) -> bool:
    """First match wins: own entry (allow or deny), then default, then any group."""
    acls = acls or {}
    if user in acls:
        return bool(acls[user].get(action, False))
    if acls.get(DEFAULT, {}).get(action, False):
        return True
    return any(acls.get(f"g:{g}", {}).get(action, False) for g in groups)


def initial_acls(owner: str, parent_acls: dict | None, is_folder: bool,
                 default_public: bool, admins=()) -> dict:
    """The owner gets everything; folders (or public servers) let everyone read;
    the parent folder's other grants are inherited."""
    acls = {owner: entry(True)}
    for name, acl in (parent_acls or {}).items():
        if name in (owner, DEFAULT) or name in admins or not isinstance(acl, dict):
            continue
        if any(acl.get(a) for a in ACTIONS):
            acls[name] = dict(acl)
    if is_folder or default_public:
        acls[DEFAULT] = entry(read=True)
    return acls


def parse_update(body) -> dict:
    """Validate a PUT /acls/{user} body: a subset of the six flags, booleans only."""
    if not isinstance(body, dict) or not body:
        raise BadRequest("ACL body must be a JSON object of permission flags")
    flags = {k: v for k, v in body.items() if k != "userName"}
    for key, value in flags.items():
        if key not in ACTIONS:
            raise BadRequest(f"unknown ACL key: {key}")
        if not isinstance(value, bool):
            raise BadRequest(f"ACL value for {key} must be true or false")
    return flags
