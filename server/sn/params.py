"""Reading a request: its domain and bucket (REST_API.md §2.2-2.3) and its parameters."""
import re
from dataclasses import dataclass

from ..core import limits
from ..core.errors import BadRequest, Forbidden

_BUCKET_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_FALSE = ("", "0", "false", "f", "no")
_URI = re.compile(r"^(s3|file|gs)://")
_AZURE = re.compile(r"^https?://[^/]+\.blob\.core\.windows\.net/")


def flag(query, name: str) -> bool:
    """Boolean parameter: absent, empty, '0' or 'false' are false."""
    return str(query.get(name, "")).strip().lower() not in _FALSE


def int_param(query, name: str, default=None):
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None


@dataclass(frozen=True)
class Target:
    """Where a request points: bucket and domain path (None: no domain given)."""
    bucket: str
    path: str | None
    by_query: bool = True   # domain came as a query parameter (shows in hrefs)

    @property
    def qualified(self) -> str:
        """'bucket/path': the name HSDS hashes to find the domain's DN and puts in ACLs."""
        return f"{self.bucket}{self.path}"


def check_bucket(bucket: str) -> str:
    name = limits.check_bucket_name(_URI.sub("", bucket))
    if not _BUCKET_RE.match(name) or name in (".", ".."):
        raise BadRequest(f"invalid bucket name: {bucket}")
    return name


def limits_buckets(settings) -> bool:
    """Do the settings keep requests from some buckets?"""
    return bool(settings.allowed_buckets) or not (settings.allow_any_bucket_read
                                                  and settings.allow_any_bucket_write)


def bucket_allowed(bucket: str, settings, write: bool = False) -> bool:
    """The default bucket always; another one when allow_any_bucket_read (or _write,
    for a change) lets it, as in HSDS, and allowed_buckets (empty: any) names it."""
    if bucket == settings.bucket_name:
        return True
    if not (settings.allow_any_bucket_write if write else settings.allow_any_bucket_read):
        return False
    allowed = settings.allowed_buckets
    return not allowed or bucket in {_URI.sub("", name) for name in allowed}


def check_allowed_bucket(bucket: str, settings, write: bool = False) -> str:
    """403 for a bucket the settings keep requests from."""
    if not bucket_allowed(bucket, settings, write):
        if write and bucket_allowed(bucket, settings):
            raise Forbidden(f"bucket {bucket} is read-only here")
        raise Forbidden(f"bucket {bucket} is not served here")
    return bucket


def split_domain(raw: str):
    """'hdf5://home/a.h5' -> (None, '/home/a.h5'); 'b1/home/a.h5' -> ('b1', '/home/a.h5');
    storage URIs name their bucket too."""
    text = raw.strip()
    if text.startswith("hdf5:/"):
        text = text[len("hdf5:/"):]
    bucket = None
    if _AZURE.match(text):
        text = _AZURE.sub("", text)
        bucket, _, rest = text.partition("/")
        text = "/" + rest
    elif _URI.match(text):
        text = _URI.sub("", text)
        bucket, _, rest = text.partition("/")
        text = "/" + rest
    elif not text.startswith("/") and "/" in text:
        bucket, _, rest = text.partition("/")
        text = "/" + rest
    return bucket, text


def check_path(path: str, folder_ok=False) -> str:
    """A domain path: absolute, no empty components, no trailing '/' (unless a folder listing)."""
    limits.check_domain_path(path)
    if folder_ok and path.endswith("/") and path != "/":
        path = path.rstrip("/")
    if path == "/" and folder_ok:
        return path
    if len(path) < 2 or not path.startswith("/") or path.endswith("/") or "//" in path:
        raise BadRequest(f"invalid domain: {path}")
    if any(part in (".", "..") for part in path.split("/")[1:]):
        raise BadRequest(f"invalid domain: {path}")
    return path


def target_of(request, default_bucket: str, folder_ok=False) -> Target:
    """The bucket and domain of a request; 400 for a bad name or a legacy 'host'."""
    query = request.query
    if "host" in query:
        raise BadRequest("the host parameter is not supported; use domain")
    by_query = "domain" in query
    raw = query.get("domain") if by_query else request.headers.get("X-Hdf-domain")
    bucket = query.get("bucket") or request.headers.get("X-Hdf-bucket")
    path = None
    if raw:
        if not folder_ok and (len(raw) < 3 or "/" not in raw or raw.endswith("/")):
            raise BadRequest(f"invalid domain: {raw}")
        embedded, path = split_domain(raw)
        bucket = bucket or embedded
        path = check_path(path, folder_ok)
    bucket = bucket or default_bucket
    if not bucket:
        raise BadRequest("Bucket not provided")
    return Target(check_bucket(bucket), path, by_query)


def parent_of(path: str) -> str | None:
    """'/a/b/c' -> '/a/b'; a top-level path has no parent (None)."""
    parent = path.rsplit("/", 1)[0]
    return parent or None
