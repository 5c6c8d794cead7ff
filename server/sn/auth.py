"""HTTP Basic authentication against the password file; groups from the groups file."""
import base64
import binascii
import hmac
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BadRequest, Unauthorized

log = logging.getLogger("h5cloud.sn")
ANONYMOUS = "default"


@dataclass(frozen=True)
class Caller:
    user: str
    groups: frozenset = field(default_factory=frozenset)
    admin: bool = False
    anonymous: bool = False


def _lines(path: str):
    if not path:
        return []
    p = Path(path)
    if not p.is_file():
        log.warning("file not found: %s", path)
        return []
    return [ln.strip() for ln in p.read_text().splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


class Authenticator:
    def __init__(self, settings):
        self.settings = settings
        self.passwords = {}
        for line in _lines(settings.password_file):
            user, _, password = line.partition(":")
            if user.strip() and password.strip():
                self.passwords[user.strip()] = password.strip()
        self.groups_of: dict[str, set] = {}
        for line in _lines(settings.groups_file):
            group, _, members = line.partition(":")
            for member in members.replace(",", " ").split():
                self.groups_of.setdefault(member, set()).add(group.strip())

    def add_user(self, user: str, password: str):
        """A user the password file does not name (the file wins when it does)."""
        self.passwords.setdefault(user, password)

    def caller(self, user: str) -> Caller:
        groups = frozenset(self.groups_of.get(user, ()))
        admin = user == self.settings.admin_user or (
            bool(self.settings.admin_group) and self.settings.admin_group in groups)
        return Caller(user, groups, admin)

    def authenticate(self, header: str | None, write: bool) -> Caller:
        """The caller for an Authorization header; anonymous reads run as 'default'."""
        if not header:
            if write or not self.settings.allow_noauth:
                raise Unauthorized("authentication required")
            return Caller(ANONYMOUS, anonymous=True)
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise BadRequest("unsupported Authorization header")
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest("malformed Basic credentials") from None
        user, sep, password = decoded.partition(":")
        if not sep or not user or not password:
            raise BadRequest("malformed Basic credentials")
        expected = self.passwords.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise Unauthorized("invalid username or password")
        return self.caller(user)
