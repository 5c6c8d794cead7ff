"""Start and stop one SN and N DNs as local processes (runall.sh, stopall.sh, tests).

    python -m server.launch start [--dn N] [--run-dir run]   # returns once serving
    python -m server.launch stop [--run-dir run]             # SIGTERM, waits for the flush

Each process gets the caller's environment plus its own port and node id;
pid and log files go to the run folder (sn.log, dn-001.log, ...).
"""
import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .config import load_settings


class Cluster:
    def __init__(self, run_dir, dn_count: int = 4, env: dict | None = None):
        self.run_dir = Path(run_dir).resolve()
        self.env = dict(os.environ if env is None else env)
        self.settings = load_settings(env=self.env)
        self.dn_count = dn_count
        host = self.settings.bind_address
        self.sn_port = self.settings.sn_port
        self.dn_ports = [self.settings.dn_port + i for i in range(dn_count)]
        connect = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.endpoint = f"http://{connect}:{self.sn_port}"
        self.dn_urls = [f"http://{connect}:{p}" for p in self.dn_ports]

    @property
    def sn_log(self) -> Path:
        return self.run_dir / "sn.log"

    def _spawn(self, stem: str, node_id: str, module: str, extra: dict):
        """Start one process; its log is <stem>.log and its pid <stem>.pid."""
        env = {**self.env, **extra, "NODE_ID": node_id, "PYTHONUNBUFFERED": "1"}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / f"{stem}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        (self.run_dir / f"{stem}.pid").write_text(str(proc.pid))
        return proc

    def spawn_dns(self) -> list:
        procs = []
        for i, port in enumerate(self.dn_ports):
            name = f"dn-{i + 1:03d}"
            procs.append(self._spawn(name, name, "server.dn.main", {"DN_PORT": str(port)}))
        return procs

    def spawn_sn(self):
        proc = self._spawn("sn", "sn-1", "server.sn.main", {
            "SN_PORT": str(self.sn_port), "DN_URLS": ",".join(self.dn_urls)})
        (self.run_dir / "endpoint").write_text(self.endpoint)
        return proc

    def start(self, timeout: float = 60.0):
        """Start the DNs and the SN; return once the SN says READY."""
        procs = self.spawn_dns() + [self.spawn_sn()]
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(p.poll() is not None for p in procs):
                self.stop()
                raise RuntimeError(f"a server process exited at start; see {self.run_dir}/*.log")
            if ready(self.endpoint):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s; see {self.run_dir}/*.log")

    def stop(self, timeout: float = 60.0):
        return stop(self.run_dir, timeout)


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports (tests, benchmarks)."""
    import random
    import socket

    def free(port):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    # below the kernel's range for the local ends of outgoing connections, which any
    # client may take between this check and the server's bind
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(200):
        base = random.randrange(10000, max(10001, low - count))
        if all(free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free ports")


def ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/about", timeout=2) as rsp:
            return json.load(rsp).get("state") == "READY"
    except OSError:
        return False


def make_home_folders(endpoint: str, admin: str, password: str, users) -> list:
    """Create /home and /home/<user> (owned by the user) where missing; returns what was made."""
    auth = "Basic " + base64.b64encode(f"{admin}:{password}".encode()).decode()
    made = []
    for path, owner in [("/home", admin)] + [(f"/home/{u}", u) for u in users]:
        query = urllib.parse.urlencode({"domain": path})
        get = urllib.request.Request(f"{endpoint}/?{query}", headers={"Authorization": auth})
        try:
            urllib.request.urlopen(get, timeout=10).close()
            continue
        except urllib.error.HTTPError as e:
            if e.code not in (404, 410):
                raise
        body = json.dumps({"folder": True, "owner": owner}).encode()
        put = urllib.request.Request(f"{endpoint}/?{query}", data=body, method="PUT",
                                     headers={"Authorization": auth,
                                              "Content-Type": "application/json"})
        urllib.request.urlopen(put, timeout=10).close()
        made.append(path)
    return made


def read_passwords(password_file: str) -> dict:
    """user -> password from a 'user:password' file."""
    pairs = {}
    for line in Path(password_file).read_text().splitlines():
        user, sep, password = line.strip().partition(":")
        if sep and user and not user.startswith("#"):
            pairs[user] = password.strip()
    return pairs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:     # not our child: gone once it is a zombie
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True


def stop(run_dir, timeout: float = 60.0) -> list:
    """SIGTERM the SN first (no new work), then the DNs (each flushes); wait for all."""
    run_dir = Path(run_dir)
    pidfiles = sorted(run_dir.glob("*.pid"), key=lambda p: (p.name != "sn.pid", p.name))
    stopped = []
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
        stopped.append(pidfile.stem)
    return stopped


def main(argv=None):
    parser = argparse.ArgumentParser(prog="h5cloud-launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "home"])
    parser.add_argument("--dn", type=int, default=None, help="number of data nodes")
    parser.add_argument("--run-dir", default="run")
    args = parser.parse_args(argv)
    if args.action == "stop":
        names = stop(args.run_dir)
        print("stopped: " + (", ".join(names) if names else "nothing was running"))
        return 0
    settings = load_settings()
    if args.action == "home":
        passwords = read_passwords(settings.password_file)
        admin = settings.admin_user
        users = [u for u in passwords if u != admin]
        password = os.environ.get("ADMIN_PASSWORD") or passwords.get(admin, "")
        if password.startswith("pbkdf2_"):      # a hashed entry: the file can't tell us
            print(f"home folders not checked: {admin}'s entry is hashed "
                  "(set ADMIN_PASSWORD to have them made)")
            return 0
        made = make_home_folders(f"http://127.0.0.1:{settings.sn_port}", admin, password,
                                 users)
        print("created folders: " + (", ".join(made) if made else "none needed"))
        return 0
    cluster = Cluster(args.run_dir, args.dn or settings.target_dn_count)
    cluster.start()
    print(f"h5cloud is serving at {cluster.endpoint} "
          f"(1 SN, {cluster.dn_count} DNs; logs: {cluster.sn_log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
