"""h5cloud against stock HSDS 1.0.2 and the loopback ceiling, in one go.

    .venv/bin/python bench/compare.py [--scale 1] [--repeat 3] [--dn 4] [--skip-hsds]

1. ../shared/bench/loopback_limit.py: how fast a bare aiohttp handler moves 32 MiB blocks.
2. h5cloud with 1 SN + N DNs (POSIX storage in a temporary folder, free loopback ports),
   driven by ../shared/bench/workload.py.
3. stock HSDS 1.0.2 (installed into .venv-hsds on first use) through
   ../shared/bench/hsds_anchor.sh, same workload.
Prints a side-by-side table with the targets of the values issue, and a JSON line.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
sys.path.insert(0, str(REPO))

# figure, unit, better, target description, target check(h5cloud, hsds, ceiling)
TARGETS = [
    ("write_durable_MiBps", "MiB/s", "high", ">= 3x HSDS", lambda o, h, c: o >= 3 * h),
    ("write_MiBps", "MiB/s", "high", "", None),
    ("read_MiBps", "MiB/s", "high", ">= 85% of ceiling", lambda o, h, c: o >= 0.85 * c),
    ("write_gzip_durable_MiBps", "MiB/s", "high", ">= 2x HSDS", lambda o, h, c: o >= 2 * h),
    ("read_gzip_MiBps", "MiB/s", "high", ">= 1.2x HSDS", lambda o, h, c: o >= 1.2 * h),
    ("column_ms", "ms", "low", ">= 2.5x faster", lambda o, h, c: o * 2.5 <= h),
    ("points10k_ms", "ms", "low", ">= 10x faster", lambda o, h, c: o * 10 <= h),
    ("query_ms", "ms", "low", ">= 1.5x faster", lambda o, h, c: o * 1.5 <= h),
    ("query10pct_ms", "ms", "low", ">= 1.5x faster", lambda o, h, c: o * 1.5 <= h),
    ("meta_ops_per_s", "ops/s", "high", ">= 3x HSDS", lambda o, h, c: o >= 3 * h),
]


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON line in:\n" + text[-2000:])


def loopback() -> dict:
    from server.launch import free_ports
    out = subprocess.run([sys.executable, str(SHARED / "loopback_limit.py"), str(free_ports(1))],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return last_json(out)


def workload(endpoint: str, args, runner=()) -> dict:
    cmd = [*runner, sys.executable, str(SHARED / "workload.py"), endpoint,
           "--scale", str(args.scale), "--repeat", str(args.repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=5400)
    sys.stderr.write(proc.stdout[-3000:])
    return last_json(proc.stdout)


def run_h5cloud(args) -> dict:
    from server.launch import Cluster, free_ports, make_home_folders
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data" / "hsdstest").mkdir(parents=True)
        (tmp / "passwd.txt").write_text("admin:admin\ntest_user1:test\ntest_user2:test\n")
        base = free_ports(args.dn + 1)
        env = {**os.environ, "ROOT_DIR": str(tmp / "data"), "BUCKET_NAME": "hsdstest",
               "PASSWORD_FILE": str(tmp / "passwd.txt"), "SN_PORT": str(base),
               "DN_PORT": str(base + 1), "LOG_LEVEL": "WARNING"}
        env.pop("AWS_S3_GATEWAY", None)
        cluster = Cluster(tmp / "run", args.dn, env).start()
        try:
            make_home_folders(cluster.endpoint, "admin", "admin", ["test_user1"])
            return workload(cluster.endpoint, args)
        finally:
            cluster.stop()


def run_hsds(args) -> dict:
    venv = REPO / ".venv-hsds"
    if not (venv / "bin" / "hsds").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "hsds==1.0.2"], check=True)
    anchor = SHARED / "hsds_anchor.sh"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ANCHOR_DIR": tmp, "HSDS_VENV": str(venv),
               "HSDS_DN_COUNT": str(args.dn)}
        subprocess.run(["bash", str(anchor), "start"], env=env, check=True, timeout=300)
        try:
            proc = subprocess.run(["bash", str(anchor), "exec", sys.executable,
                                   str(SHARED / "workload.py"), "http://127.0.0.1:5101",
                                   "--scale", str(args.scale), "--repeat", str(args.repeat)],
                                  env=env, capture_output=True, text=True, timeout=5400)
            sys.stderr.write(proc.stdout[-3000:])
            return last_json(proc.stdout)
        finally:
            subprocess.run(["bash", str(anchor), "stop"], env=env, timeout=300)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dn", type=int, default=4)
    p.add_argument("--skip-hsds", action="store_true")
    args = p.parse_args()
    ceiling = loopback()
    print(f"loopback ceiling: {ceiling}", file=sys.stderr)
    ours = run_h5cloud(args)
    theirs = {} if args.skip_hsds else run_hsds(args)
    print(f"\nscale {args.scale}, {args.dn} DNs, best of {args.repeat}; "
          f"ceiling read {ceiling['loopback_read_MiBps']} write {ceiling['loopback_write_MiBps']} MiB/s")
    print(f"{'figure':26s} {'unit':6s} {'h5cloud':>9s} {'HSDS':>9s} {'ratio':>7s}  target")
    for key, unit, better, text, check in TARGETS:
        o, h = ours.get(key), theirs.get(key)
        ratio = ""
        if o and h:
            ratio = f"{(o / h if better == 'high' else h / o):.1f}x"
        verdict = ""
        if check and o is not None and (h is not None or "ceiling" in text):
            ok = check(o, h or 0, ceiling["loopback_read_MiBps"])
            verdict = f"{text}: {'met' if ok else 'MISSED'}"
        print(f"{key:26s} {unit:6s} {o if o is not None else '-':>9} "
              f"{h if h is not None else '-':>9} {ratio:>7s}  {verdict}")
    print(json.dumps({"ceiling": ceiling, "h5cloud": ours, "hsds": theirs}))


if __name__ == "__main__":
    main()
