"""HTTP Basic authentication against the password file; groups from the groups file.

Password-file entries are plain passwords (HSDS's `user:password`) or salted PBKDF2
hashes (`user:pbkdf2_sha256$...`, see passwords.py). Every comparison is constant-time,
and a user the file does not name is checked against a dummy entry of the file's kind,
so the answer's timing does not tell whether a user exists. A hash costs tens of
milliseconds, so verified credentials are remembered (keyed by a SHA-256 of the
Authorization header, a bounded LRU) and the hashing runs in a small thread pool, off
the event loop.
"""
import asyncio
import base64
import hashlib
import logging
import os
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BadRequest, Unauthorized, Unavailable
from . import passwords as pw

log = logging.getLogger("h5cloud.sn")
ANONYMOUS = "default"
CACHE_SIZE = 1024          # verified Authorization headers remembered
HASH_THREADS = 2           # PBKDF2 checks running at once (hashlib releases the GIL)


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
        self.passwords = {}       # user -> entry: the password, or a pbkdf2_sha256 hash
        for line in _lines(settings.password_file):
            parsed = pw.parse_line(line)
            if parsed is None:
                continue
            user, entry = parsed
            if pw.is_hashed(entry):
                try:
                    pw.parse_hash(entry)
                except ValueError as e:
                    log.warning("password file: the entry of %s is ignored: %s", user, e)
                    continue
            self.passwords[user] = entry
        self.groups_of: dict[str, set] = {}
        for line in _lines(settings.groups_file):
            group, _, members = line.partition(":")
            for member in members.replace(",", " ").split():
                self.groups_of.setdefault(member, set()).add(group.strip())
        self._dummy = self._make_dummy()
        self._verified: OrderedDict = OrderedDict()   # sha256(header) -> user
        self._pool: ThreadPoolExecutor | None = None
        self._hashing = 0           # hash checks queued or running

    def _make_dummy(self) -> str:
        """What an unknown user's password is checked against: a hash with the file's
        most common iteration count when it holds hashes, else a plain entry."""
        costs = Counter(pw.hash_cost(e) for e in self.passwords.values() if pw.is_hashed(e))
        secret = base64.b64encode(os.urandom(18)).decode()
        if costs:
            return pw.hash_password(secret, costs.most_common(1)[0][0])
        return secret

    def add_user(self, user: str, password: str):
        """A user the password file does not name (the file wins when it does)."""
        self.passwords.setdefault(user, password)

    def caller(self, user: str) -> Caller:
        groups = frozenset(self.groups_of.get(user, ()))
        admin = user == self.settings.admin_user or (
            bool(self.settings.admin_group) and self.settings.admin_group in groups)
        return Caller(user, groups, admin)

    # ---- checking credentials ------------------------------------------------------

    def _credentials(self, header: str) -> tuple[str, str]:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            raise BadRequest("unsupported Authorization header")
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):     # binascii.Error, non-ASCII text
            raise BadRequest("malformed Basic credentials") from None
        user, sep, password = decoded.partition(":")
        if not sep or not user or not password:
            raise BadRequest("malformed Basic credentials")
        return user, password

    def _entry(self, user: str) -> tuple[str, bool]:
        """(the entry to check against, whether the user exists)."""
        entry = self.passwords.get(user)
        return (self._dummy, False) if entry is None else (entry, True)

    def _check(self, user: str, password: str) -> bool:
        entry, known = self._entry(user)
        try:
            ok = pw.verify(entry, password)
        except ValueError:
            ok = False
        return ok and known

    @staticmethod
    def _key(header: str) -> bytes:
        return hashlib.sha256(header.encode("utf-8", "surrogatepass")).digest()

    def _remembered(self, key: bytes) -> str | None:
        user = self._verified.get(key)
        if user is not None:
            self._verified.move_to_end(key)
        return user

    def _verdict(self, key: bytes, user: str, ok: bool) -> Caller:
        if not ok:
            raise Unauthorized("invalid username or password")
        if pw.is_hashed(self.passwords[user]):
            self._verified[key] = user
            if len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return self.caller(user)

    def _anonymous(self, write: bool) -> Caller:
        if write or not self.settings.allow_noauth:
            raise Unauthorized("authentication required")
        return Caller(ANONYMOUS, anonymous=True)

    def _start(self, header: str | None, write: bool):
        """The caller when no password check is needed (anonymous, remembered), else
        the (key, user, password) to check."""
        if not header:
            return self._anonymous(write)
        key = self._key(header)
        user = self._remembered(key)
        if user is not None:
            return self.caller(user)
        return (key, *self._credentials(header))

    def authenticate(self, header: str | None, write: bool) -> Caller:
        """The caller for an Authorization header; anonymous reads run as 'default'.
        Hashes are computed inline here; the server uses authenticate_async."""
        found = self._start(header, write)
        if isinstance(found, Caller):
            return found
        key, user, password = found
        return self._verdict(key, user, self._check(user, password))

    async def authenticate_async(self, header: str | None, write: bool) -> Caller:
        """As authenticate, with a hash check (a first login, a wrong password, an
        unknown user where the file holds hashes) run in the thread pool."""
        found = self._start(header, write)
        if isinstance(found, Caller):
            return found
        key, user, password = found
        if not pw.is_hashed(self._entry(user)[0]):
            return self._verdict(key, user, self._check(user, password))
        if self._hashing >= max(1, self.settings.max_task_count):
            raise Unavailable("too many logins in progress")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="h5cloud-auth")
        self._hashing += 1
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._check, user, password)
        finally:
            self._hashing -= 1
        return self._verdict(key, user, ok)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
