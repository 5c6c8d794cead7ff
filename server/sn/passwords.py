"""Password entries of the password file, and a tool to manage them.

A line of the password file is `user:entry`, where entry is either the password itself
(HSDS's format) or a salted hash:

    user:pbkdf2_sha256$<iterations>$<salt, base64>$<hash, base64>

(hashlib.pbkdf2_hmac with SHA-256, a 16-byte random salt and a 32-byte hash). Lines
starting with '#' and empty lines are kept as they are.

    python -m server.sn.passwords add FILE USER [--password P] [--iterations N]
    python -m server.sn.passwords remove FILE USER
    python -m server.sn.passwords list FILE

`add` adds the user or changes its password (the password from --password, else from a
prompt on a terminal, else the first line of stdin) and always writes a hashed entry;
the file is rewritten atomically (a temporary file in the same folder, then renamed over
it; through a symlink, its target), keeping its permissions (0600 for a new file). The
server reads the file at start: restart the SN after a change.
"""
import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import os
import sys
import tempfile
from pathlib import Path

SCHEME = "pbkdf2_sha256"
# ~30 ms per hash on the development machine (2 cores, idle); a verified login is then cached
# by the server, so only a client's first request (and every wrong password) pays it
DEFAULT_ITERATIONS = 50_000
MAX_ITERATIONS = 10_000_000        # an entry asking for more is refused, not computed
SALT_BYTES = 16


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> str:
    """A `pbkdf2_sha256$...` entry for password."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$".join((SCHEME, str(iterations), base64.b64encode(salt).decode("ascii"),
                     base64.b64encode(digest).decode("ascii")))


def is_hashed(entry: str) -> bool:
    return entry.startswith(SCHEME + "$")


def parse_hash(entry: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, hash) of a hashed entry; ValueError when malformed."""
    parts = entry.split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError("not a pbkdf2_sha256$<iterations>$<salt>$<hash> entry")
    try:
        iterations = int(parts[1])
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("malformed iterations, salt or hash") from None
    if not 1 <= iterations <= MAX_ITERATIONS or not salt or len(digest) < 16:
        raise ValueError("iterations, salt or hash out of range")
    return iterations, salt, digest


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def verify(entry: str, password: str) -> bool:
    """Does password match the entry (hashed or plain)? Constant-time comparisons only:
    a plain entry is compared through SHA-256 digests, so not even its length shows."""
    given = password.encode("utf-8")
    if is_hashed(entry):
        iterations, salt, digest = parse_hash(entry)
        computed = hashlib.pbkdf2_hmac("sha256", given, salt, iterations, len(digest))
        return hmac.compare_digest(computed, digest)
    return hmac.compare_digest(_sha(entry.encode("utf-8")), _sha(given))


def hash_cost(entry: str) -> int:
    """PBKDF2 iterations a check of this entry costs (0 for a plain one)."""
    return parse_hash(entry)[0] if is_hashed(entry) else 0


# ---- the file ------------------------------------------------------------------------

def parse_line(line: str) -> tuple[str, str] | None:
    """(user, entry) of a password-file line; None for comments, blanks, malformed lines."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    user, sep, entry = text.partition(":")
    user, entry = user.strip(), entry.strip()
    if not sep or not user or not entry:
        return None
    return user, entry


def read_entries(path) -> dict:
    """user -> entry, in file order (a later line for the same user wins)."""
    entries = {}
    p = Path(path)
    if p.is_file():
        for line in p.read_text().splitlines():
            parsed = parse_line(line)
            if parsed:
                entries[parsed[0]] = parsed[1]
    return entries


def check_user(user: str) -> str:
    if (not user or user != user.strip() or user.startswith("#")
            or any(c in user for c in ":\r\n")):
        raise ValueError(f"invalid user name: {user!r}")
    return user


def write_atomic(path, text: str):
    """Replace the file's content at once: a temporary file beside it, flushed to disk,
    then renamed over it; the old file's permissions are kept (0600 for a new file)."""
    path = Path(os.path.realpath(path))      # a symlink's target is what changes
    folder = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:          # the rename itself is durable once the folder is synced
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def set_user(path, user: str, password: str, iterations: int = DEFAULT_ITERATIONS) -> bool:
    """Add the user or change its password (a hashed entry, in place of its old line);
    True when the user was new."""
    check_user(user)
    if not password:
        raise ValueError("the password must not be empty")
    line = f"{user}:{hash_password(password, iterations)}"
    p = Path(path)
    lines = p.read_text().splitlines() if p.is_file() else []
    out, found = [], False
    for existing in lines:
        parsed = parse_line(existing)
        if parsed and parsed[0] == user:
            if not found:
                out.append(line)
            found = True
            continue
        out.append(existing)
    if not found:
        out.append(line)
    write_atomic(p, "\n".join(out) + "\n")
    return not found


def remove_user(path, user: str) -> bool:
    """Remove the user's lines; False when there was none."""
    p = Path(path)
    if not p.is_file():
        return False
    lines = p.read_text().splitlines()
    kept = [ln for ln in lines if (parse_line(ln) or ("",))[0] != user]
    if len(kept) == len(lines):
        return False
    write_atomic(p, "".join(ln + "\n" for ln in kept))
    return True


# ---- the tool ------------------------------------------------------------------------

def _read_password(args) -> str:
    if args.password is not None:
        return args.password
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="h5cloud-passwd",
        description="Add, change, remove or list the users of an h5cloud password file.")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a user or change its password (stored hashed)")
    add.add_argument("file")
    add.add_argument("user")
    add.add_argument("--password", help="the password (default: prompt, or stdin's first line)")
    add.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                     help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS})")
    rm = sub.add_parser("remove", help="remove a user")
    rm.add_argument("file")
    rm.add_argument("user")
    ls = sub.add_parser("list", help="list the users and how each password is stored")
    ls.add_argument("file")
    args = parser.parse_args(argv)
    try:
        if args.action == "add":
            check_user(args.user)
            new = set_user(args.file, args.user, _read_password(args), args.iterations)
            print(f"{'added' if new else 'changed'} {args.user}")
        elif args.action == "remove":
            if not remove_user(args.file, args.user):
                print(f"no user {args.user} in {args.file}", file=sys.stderr)
                return 1
            print(f"removed {args.user}")
        else:
            if not Path(args.file).is_file():
                print(f"no such file: {args.file}", file=sys.stderr)
                return 1
            for user, entry in read_entries(args.file).items():
                if is_hashed(entry):
                    try:
                        kind = f"{SCHEME} ({parse_hash(entry)[0]} iterations)"
                    except ValueError:
                        kind = "malformed hash"
                else:
                    kind = "plain"
                print(f"{user}\t{kind}")
    except (ValueError, OSError) as e:
        print(f"h5cloud-passwd: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
