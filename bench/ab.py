"""A/B timing of two versions of the server on identical clusters, taking turns: is a
change faster, and which process spends the CPU?

    .venv/bin/python bench/ab.py [--base REV] [--rounds 3] [--n 300] KIND...

KIND is one of
  column   x[:, 17] of an 8192 x 8192 float32 dataset in 512 x 512 chunks (the DNs hold it)
  points   10,000 random points of it, binary in and out
  query10  temp > 90.0 over a 1M-row compound table, rows only (binary)
  meta     the workload's pair: POST /groups with a link, PUT an attribute on it
B is the working tree; A is --base (default HEAD), checked out into a temporary git
worktree. Every round starts a fresh cluster (--dn DNs, POSIX storage) from each tree in
turn, the first of the two alternating, writes the data, and times --n requests after a
warm-up. Printed per tree: median [min-max] of the rounds' median ms per request, and CPU
ms per request from /proc (the client, the SN, all DNs together); then B/A of the medians.
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = ("column", "points", "query10", "meta")
BIN = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}


# ---- one measurement, run with the tree under test as cwd ---------------------------

def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kind: str, n: int, dn: int, size: int, rows: int) -> dict:
    """Start a cluster from the server package on PYTHONPATH, run kind n times."""
    import numpy as np
    import requests
    import server       # first: compare puts this repository on sys.path, and the
    import compare      # cluster must come from the tree under test (server.__path__)

    with contextlib.ExitStack() as stack:
        cluster = compare.start_h5cloud(stack, argparse.Namespace(dn=dn))
        run_dir = Path(cluster["run_dir"])
        session = requests.Session()
        domain = f"/home/test_user1/ab_{uuid.uuid4().hex[:8]}.h5"

        def rest(method, path, params=None, **kw):
            rsp = session.request(method, cluster["endpoint"] + path, auth=("test_user1", "test"),
                                  params={"domain": domain, **(params or {})}, **kw)
            rsp.raise_for_status()
            return rsp

        root = rest("PUT", "/").json()["root"]
        one = _setup(kind, rest, root, np, size, rows)
        for _ in range(max(5, n // 10)):
            one(-1)
        pids = [int(p.read_text()) for p in sorted(run_dir.glob("*.pid"))]
        sn_pid = int((run_dir / "sn.pid").read_text())
        before = {p: _cpu_s(p) for p in pids}
        mine = time.process_time()
        times = []
        for i in range(n):
            t = time.perf_counter()
            one(i)
            times.append(time.perf_counter() - t)
        client = time.process_time() - mine
        used = {p: _cpu_s(p) - before[p] for p in pids}
    per = 1000 / n
    return {"kind": kind, "tree": str(Path(server.__file__).resolve().parent.parent),
            "ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000,
            "cpu_ms": {"client": client * per, "sn": used[sn_pid] * per,
                       "dns": sum(v for p, v in used.items() if p != sn_pid) * per}}


def _setup(kind, rest, root, np, size, rows):
    """Write what kind reads; the request to time, as a function of its number."""
    rng = np.random.default_rng(1)
    if kind == "meta":
        made = rest("POST", "/groups", json={"link": {"id": root, "name": "meta"}})
        parent = made.json()["id"]

        def pair(i):
            name = f"g{i}_{uuid.uuid4().hex[:6]}"
            link = {"id": parent, "name": name}
            gid = rest("POST", "/groups", json={"link": link}).json()["id"]
            rest("PUT", f"/groups/{gid}/attributes/a", json={
                "type": "H5T_STD_I32LE", "shape": [4], "value": [i, i + 1, i + 2, i + 3]})
        return pair
    if kind == "query10":
        dtype = np.dtype([("id", "<i4"), ("temp", "<f4"), ("sym", "S4")])
        table = np.zeros(rows, dtype)
        table["id"] = np.arange(rows)
        table["temp"] = np.round(rng.random(rows, dtype=np.float32) * 100, 2)
        table["sym"] = np.array([b"AAPL", b"MSFT", b"GOOG", b"AMZN"])[np.arange(rows) % 4]
        string = {"class": "H5T_STRING", "charSet": "H5T_CSET_ASCII",
                  "strPad": "H5T_STR_NULLPAD", "length": 4}
        ctype = {"class": "H5T_COMPOUND", "fields": [
            {"name": "id", "type": "H5T_STD_I32LE"}, {"name": "temp", "type": "H5T_IEEE_F32LE"},
            {"name": "sym", "type": string}]}
        layout = {"class": "H5D_CHUNKED", "dims": [min(rows, 131072)]}
        tid = rest("POST", "/datasets", json={"type": ctype, "shape": [rows],
                                              "creationProperties": {"layout": layout}})
        tid = tid.json()["id"]
        rest("PUT", f"/datasets/{tid}/value", data=table.tobytes(), headers=BIN)
        want = int((table["temp"] > 90.0).sum())

        def query(_):
            got = rest("GET", f"/datasets/{tid}/value", params={"query": "temp > 90.0"},
                       headers=BIN).content
            assert len(got) == want * dtype.itemsize, "query answered wrong rows"
        return query
    layout = {"class": "H5D_CHUNKED", "dims": [512, 512]}
    did = rest("POST", "/datasets", json={"type": "H5T_IEEE_F32LE", "shape": [size, size],
                                          "creationProperties": {"layout": layout}})
    did = did.json()["id"]
    block = max(1, 2**25 // (size * 4))
    for r0 in range(0, size, block):
        data = rng.random((min(block, size - r0), size), dtype=np.float32)
        rest("PUT", f"/datasets/{did}/value", data=data.tobytes(), headers=BIN,
             params={"select": f"[{r0}:{r0 + len(data)},0:{size}]"})
    rest("PUT", "/", json={"flush": 1})
    if kind == "column":
        return lambda _: rest("GET", f"/datasets/{did}/value", headers=BIN,
                              params={"select": f"[0:{size},17:18]"})
    points = rng.integers(0, size, (10_000, 2)).astype("<u8").tobytes()
    return lambda _: rest("POST", f"/datasets/{did}/value", data=points, headers=BIN)


# ---- the A/B driver ------------------------------------------------------------------

def run_one(tree: Path, kind: str, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", kind, "--n", str(args.n),
           "--dn", str(args.dn), "--size", str(args.size), "--rows", str(args.rows)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                         timeout=1800)
    if out.returncode:
        raise SystemExit(f"{kind} in {tree} failed:\n{out.stderr[-3000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(got["tree"]) != tree.resolve():
        raise SystemExit(f"{kind} meant for {tree} ran the server in {got['tree']}")
    return got


def summary(runs: list) -> str:
    ms = [r["ms"] for r in runs]
    cpu = {k: statistics.median(r["cpu_ms"][k] for r in runs) for k in ("client", "sn", "dns")}
    return (f"{statistics.median(ms):.2f} [{min(ms):.2f}-{max(ms):.2f}] ms "
            f"(CPU ms: client {cpu['client']:.2f}, SN {cpu['sn']:.2f}, DNs {cpu['dns']:.2f})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kinds", nargs="*", metavar="KIND", help=", ".join(KINDS))
    p.add_argument("--base", default="HEAD", help="the git revision to compare with (A)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=300, help="timed requests per run")
    p.add_argument("--dn", type=int, default=4)
    p.add_argument("--size", type=int, default=8192, help="the 2-D dataset's side")
    p.add_argument("--rows", type=int, default=1_000_000, help="the table's rows")
    p.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.n, args.dn, args.size, args.rows)))
        return
    if not args.kinds or not set(args.kinds) <= set(KINDS):
        p.error(f"name one or more of {', '.join(KINDS)}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q",
                        str(base), args.base], check=True)
        try:
            for kind in args.kinds:
                runs = {"A": [], "B": []}
                for r in range(args.rounds):
                    for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
                        runs[side].append(run_one(base if side == "A" else REPO, kind, args))
                ratio = statistics.median(x["ms"] for x in runs["B"]) / \
                    statistics.median(x["ms"] for x in runs["A"])
                print(f"{kind}: A ({args.base}) {summary(runs['A'])}")
                print(f"{kind}: B (working tree) {summary(runs['B'])}")
                print(f"{kind}: B/A {ratio:.3f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(base)], check=False)


if __name__ == "__main__":
    main()
