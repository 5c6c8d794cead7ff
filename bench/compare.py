"""h5cloud against stock HSDS 1.0.2 and the loopback ceiling, in repeated interleaved runs.

    .venv/bin/python bench/compare.py [--runs 5] [--scale 1] [--dn 4] [--skip-hsds]

Starts h5cloud (1 SN + N DNs, POSIX storage in a temporary folder, free loopback ports) and
stock HSDS 1.0.2 (installed into .venv-hsds on first use, run by ../shared/bench/hsds_anchor.sh
in its own network namespace) once each. Then, --runs rounds: probe the loopback ceiling
(../shared/bench/loopback_limit.py) and the workload client's own ceilings
(bench/client_ceiling.py: a server that does nothing, asked the workload's way: its read
and its metadata step), then run ../shared/bench/workload.py --repeat 1 once against each
server (a fresh domain per run), the two taking turns at going first, so drift hits both;
each run starts after a sync() (the other's writes reach the disk before, not during, it)
once the CPUs are quiet.
Every figure is shown as median [min-max] per server; a target is judged on the median
of the per-round ratios (h5cloud vs HSDS of the same round; read vs the ceiling of the
same round). The machine's speed is probed each round (a fixed Python loop) and its load
sampled every second. Prints a table and a JSON line.
"""
import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import mean, median

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
sys.path.insert(0, str(REPO))

# figure, unit, better, target (factor, against) or None. Against "HSDS": the median of the
# per-round ratios (oriented so > 1 is better for h5cloud) >= factor; against "ceiling": the
# median of h5cloud's read as % of the same round's loopback ceiling >= factor.
TARGETS = [
    ("write_durable_MiBps", "MiB/s", "high", (4, "HSDS")),
    ("write_MiBps", "MiB/s", "high", None),
    ("read_MiBps", "MiB/s", "high", None),
    ("read_of_ceiling", "%", "high", (90, "ceiling")),
    ("read_of_client_ceiling", "%", "high", None),
    ("write_gzip_durable_MiBps", "MiB/s", "high", (2, "HSDS")),
    ("read_gzip_MiBps", "MiB/s", "high", (1.5, "HSDS")),
    ("column_ms", "ms", "low", (4, "HSDS")),
    ("points10k_ms", "ms", "low", (20, "HSDS")),
    ("query_ms", "ms", "low", (1.5, "HSDS")),
    ("query10pct_ms", "ms", "low", (2, "HSDS")),
    ("meta_ops_per_s", "ops/s", "high", (4, "HSDS")),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_times():
    """(busy, total) jiffies of all CPUs from /proc/stat, None where there is none."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return sum(v) - v[3] - v[4], sum(v)  # idle and iowait are not busy


class Load(threading.Thread):
    """1-min load average and CPU busy % every second, each tagged with the current phase."""

    def __init__(self):
        super().__init__(daemon=True)
        self.phase, self.samples, self.halt = "setup", [], threading.Event()

    def run(self):
        prev = cpu_times()
        while not self.halt.wait(1.0):
            cur = cpu_times()
            busy = None
            if prev and cur and cur[1] > prev[1]:
                busy = 100 * (cur[0] - prev[0]) / (cur[1] - prev[1])
            prev = cur
            self.samples.append((self.phase, os.getloadavg()[0], busy))

    def summary(self, match=lambda phase: True) -> dict:
        s = [x for x in self.samples if match(x[0])]
        loads, busy = [x[1] for x in s], [x[2] for x in s if x[2] is not None]
        return {"load_mean": round(mean(loads), 2) if loads else None,
                "load_max": round(max(loads), 2) if loads else None,
                "cpu_busy_pct": round(mean(busy), 1) if busy else None, "seconds": len(s)}


def dirty_kib() -> int:
    """The page cache's dirty data not yet on disk, KiB (0 where /proc has no meminfo)."""
    try:
        with open("/proc/meminfo") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("Dirty:")), 0)
    except OSError:
        return 0


def write_back() -> tuple:
    """(dirty KiB before, seconds): sync() now. The kernel writes dirty pages back 30 s
    after they were written, so a run's writes (HSDS's take a minute) would otherwise go
    to disk during the other server's next run and bill it for that I/O."""
    before, t0 = dirty_kib(), time.monotonic()
    os.sync()
    return before, time.monotonic() - t0


def wait_quiet(busy_pct: float, most: float = 60) -> float:
    """Seconds waited until one second passes with the CPUs under busy_pct % busy."""
    t0 = time.monotonic()
    prev = cpu_times()
    while prev and time.monotonic() - t0 < most:
        time.sleep(1.0)
        cur = cpu_times()
        if cur[1] > prev[1] and 100 * (cur[0] - prev[0]) / (cur[1] - prev[1]) < busy_pct:
            break
        prev = cur
    return time.monotonic() - t0


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON line in:\n" + text[-2000:])


def speed_probe() -> float:
    """ms of a fixed pure-Python loop on an idle machine: how fast the machine is this
    round (a shared VM's speed drifts, by 2x in a day on the development VM)."""
    t0 = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return round((time.perf_counter() - t0) * 1000, 1)


def loopback() -> dict:
    from server.launch import free_ports
    out = subprocess.run([sys.executable, str(SHARED / "loopback_limit.py"), str(free_ports(1))],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return last_json(out)


def client_ceiling(scale: float) -> dict:
    """bench/client_ceiling.py: a server that does nothing, read the workload's way."""
    from server.launch import free_ports
    out = subprocess.run([sys.executable, str(HERE / "client_ceiling.py"), "--scale", str(scale),
                          "--port", str(free_ports(1))],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return last_json(out)


def workload(server: dict, args, h5pyd_check: bool) -> dict:
    """One workload.py --repeat 1 run; its process group is killed if we stop early."""
    cmd = [*server["prefix"], sys.executable, str(SHARED / "workload.py"), server["endpoint"],
           "--scale", str(args.scale), "--repeat", "1"] + ([] if h5pyd_check else ["--no-h5pyd-check"])
    proc = subprocess.Popen(cmd, env=server["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=3600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    res = {}
    with contextlib.suppress(RuntimeError, ValueError):
        res = last_json(out)
    # exit 1 with figures: only the untimed h5pyd check failed (shown at the end)
    h5pyd_failed = str(res.get("h5pyd_check")).startswith("FAIL")
    if "read_MiBps" not in res or (proc.returncode and not h5pyd_failed):
        raise RuntimeError(f"workload against {server['name']} failed (exit {proc.returncode}):\n"
                           f"{err[-3000:]}{out[-1000:]}")
    return res


def start_h5cloud(stack, args) -> dict:
    from server.launch import Cluster, free_ports, make_home_folders
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    (tmp / "data" / "hsdstest").mkdir(parents=True)
    (tmp / "passwd.txt").write_text("admin:admin\ntest_user1:test\ntest_user2:test\n")
    base = free_ports(args.dn + 1)
    env = {**os.environ, "ROOT_DIR": str(tmp / "data"), "BUCKET_NAME": "hsdstest",
           "PASSWORD_FILE": str(tmp / "passwd.txt"), "SN_PORT": str(base),
           "DN_PORT": str(base + 1), "LOG_LEVEL": "WARNING"}
    env.pop("AWS_S3_GATEWAY", None)
    cluster = Cluster(tmp / "run", args.dn, env)
    stack.callback(cluster.stop)  # a no-op where nothing was started
    cluster.start()
    make_home_folders(cluster.endpoint, "admin", "admin", ["test_user1"])
    return {"name": "h5cloud", "prefix": [], "endpoint": cluster.endpoint, "env": None,
            "run_dir": cluster.run_dir}


def hsds_venv() -> Path:
    """.venv-hsds with stock HSDS 1.0.2, made on first use."""
    venv = REPO / ".venv-hsds"
    if not (venv / "bin" / "hsds").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "hsds==1.0.2"], check=True)
    return venv


def start_hsds(stack, args) -> dict:
    venv = hsds_venv()
    anchor = str(SHARED / "hsds_anchor.sh")
    tmp = stack.enter_context(tempfile.TemporaryDirectory())
    env = {**os.environ, "ANCHOR_DIR": tmp, "HSDS_VENV": str(venv), "HSDS_DN_COUNT": str(args.dn)}
    stack.callback(subprocess.run, ["bash", anchor, "stop"], env=env, timeout=300,
                   stdout=sys.stderr)
    subprocess.run(["bash", anchor, "start"], env=env, check=True, timeout=300, stdout=sys.stderr)
    return {"name": "HSDS", "prefix": ["bash", anchor, "exec"],
            "endpoint": "http://127.0.0.1:5101", "env": env}


def figure(res: dict, key: str):
    """The run's figure: with --repeat 1 throughputs are one sample; ms figures are medians."""
    return res.get(key + "_med", res.get(key))


def client_bounds(ceilings: list, hsds: dict) -> list:
    """[(label, unit, per-round values)]: the figures of a server that does no work, which
    is where the workload's client alone stops any server (its first read of a dataset
    faults in a fresh array; the loopback probe makes none)."""
    client = [c.get("client_read_MiBps") for c in ceilings]
    out = [("read", "% of the loopback ceiling",
            [round(100 * c / c0["loopback_read_MiBps"], 1) if c else None
             for c, c0 in zip(client, ceilings)])]
    meta = [c.get("client_meta_ops_per_s") for c in ceilings]
    for key, label, bound in (("read_MiBps", "read", client),
                              ("read_gzip_MiBps", "deflate read", client),
                              ("meta_ops_per_s", "metadata", meta)):
        if hsds.get(key):
            out.append((label, "x HSDS", [round(c / h, 2) if c and h else None
                                          for c, h in zip(bound, hsds[key])]))
    return out


def fmt(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def spread(vals, suffix=""):
    vals = [v for v in vals if v is not None]
    return f"{fmt(median(vals))}{suffix} [{fmt(min(vals))}-{fmt(max(vals))}]" if vals else "-"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="workload runs per server (rounds)")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--dn", type=int, default=4)
    p.add_argument("--settle", type=float, default=3, help="pause before each run, s")
    p.add_argument("--quiet", type=float, default=15,
                   help="then wait (up to 60 s) until the CPUs are less busy than this %% "
                        "over one second: a server's background work after its run (HSDS "
                        "writes back and rescans) must not land in the other's run")
    p.add_argument("--skip-hsds", action="store_true")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below runs

    cores = os.cpu_count()
    before = os.getloadavg()[0]
    log(f"load average before starting: {before:.2f} on {cores} cores")
    if before > 0.5 * cores:
        log(f"WARNING: the machine is already busy (load {before:.2f} > 0.5 per core): "
            "figures will be noisy")
    load = Load()
    load.start()
    ceilings, runs, probes = [], [], []
    stack = contextlib.ExitStack()
    try:
        servers = [start_h5cloud(stack, args)] + ([] if args.skip_hsds else [start_hsds(stack, args)])
        for r in range(1, args.runs + 1):
            load.phase = f"ceiling {r}"
            wait_quiet(args.quiet)
            probes.append(speed_probe())
            ceilings.append(loopback())
            ceilings[-1].update(client_ceiling(args.scale))
            log(f"round {r}/{args.runs}: speed probe {probes[-1]} ms, loopback ceiling "
                f"{ceilings[-1]}")
            for s in servers if r % 2 else servers[::-1]:
                load.phase = "settle"
                dirty, took = write_back()
                if dirty > 1024:
                    log(f"synced {dirty / 1024:.0f} MiB of dirty pages in {took:.1f} s")
                time.sleep(args.settle)
                waited = wait_quiet(args.quiet)
                if waited > 1:
                    log(f"waited {waited:.0f} s more for the CPUs to go quiet")
                load.phase = f"{s['name']} {r}"
                t0 = time.perf_counter()
                res = workload(s, args, h5pyd_check=(r == 1))
                res["read_of_ceiling"] = round(100 * res["read_MiBps"]
                                               / ceilings[-1]["loopback_read_MiBps"], 1)
                res["read_of_client_ceiling"] = round(100 * res["read_MiBps"]
                                                      / ceilings[-1]["client_read_MiBps"], 1)
                phase = load.phase
                ld = load.summary(lambda ph: ph == phase)
                runs.append({"server": s["name"], "round": r, "load": ld, "result": res,
                             "seconds": round(time.perf_counter() - t0, 1)})
                log(f"round {r}/{args.runs} {s['name']}: {runs[-1]['seconds']} s, load average mean "
                    f"{fmt(ld['load_mean'])} max {fmt(ld['load_max'])}, "
                    f"CPU {fmt(ld['cpu_busy_pct'])}% busy, h5pyd {res.get('h5pyd_check')}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the servers stop
        load.phase = "stop"
        log("stopping the servers")
        stack.close()
        load.halt.set()

    names = [s["name"] for s in servers]
    by = {n: {r["round"]: r["result"] for r in runs if r["server"] == n} for n in names}
    rounds = range(1, args.runs + 1)
    samples = {n: {k: [figure(by[n][r], k) for r in rounds] for k, *_ in TARGETS} for n in names}
    ratios = {}
    for key, unit, better, target in TARGETS:
        if "HSDS" in by and unit != "%":  # read % of ceiling: its ratio is read's
            o, h = samples["h5cloud"][key], samples["HSDS"][key]
            ratios[key] = [round(a / b if better == "high" else b / a, 3) if a and b else None
                           for a, b in zip(o, h)]

    ceil_r = [c["loopback_read_MiBps"] for c in ceilings]
    ceil_w = [c["loopback_write_MiBps"] for c in ceilings]
    ceil_c = [c["client_read_MiBps"] for c in ceilings]
    print(f"\nscale {args.scale}, {args.dn} DNs, {args.runs} interleaved runs per server; "
          f"loopback ceiling read {spread(ceil_r)} write {spread(ceil_w)} MiB/s; the workload "
          f"client's read ceiling (bench/client_ceiling.py) {spread(ceil_c)} MiB/s; speed probe "
          f"{spread(probes)} ms (a fixed Python loop, per round: {probes})")
    print(f"{'figure':25s} {'unit':6s} {'h5cloud med [min-max]':>24s} {'HSDS med [min-max]':>24s} "
          f"{'ratio med [min-max]':>22s}  target")
    for key, unit, better, target in TARGETS:
        rat = ratios.get(key, [])
        verdict = ""
        if target:
            factor, against = target
            text = (f">= {factor:g}% of ceiling" if against == "ceiling" else
                    f">= {factor:g}x {'HSDS' if better == 'high' else 'faster'}")
            judged = samples["h5cloud"][key] if against == "ceiling" else rat
            judged = [v for v in judged if v is not None]
            verdict = f"{text}: " + (("met" if median(judged) >= factor else "MISSED") if judged else "-")
        print(f"{key:25s} {unit:6s} {spread(samples['h5cloud'][key]):>24s} "
              f"{spread(samples.get('HSDS', {}).get(key, [])):>24s} {spread(rat, 'x'):>22s}  {verdict}")

    bounds = client_bounds(ceilings, samples.get("HSDS", {}))
    if bounds:
        print("a server that does no work at all (bench/client_ceiling.py: the workload's own "
              "client reading prebuilt blocks, making groups and attributes nobody stores) "
              "would reach: "
              + "; ".join(f"{label} {spread(vals)} {unit}" for label, unit, vals in bounds))

    load_all = {"cores": cores, "before": round(before, 2)}
    for n in names:
        load_all[n] = load.summary(lambda ph: ph.startswith(n + " "))
    load_all["between_runs"] = load.summary(lambda ph: ph == "settle")
    load_all["overall"] = load.summary()
    print(f"machine load: {cores} cores, 1-min load average {before:.2f} before starting")
    for k, v in load_all.items():
        if isinstance(v, dict):
            label = f"{k} runs" if k in names else k.replace("_", " ")
            print(f"  {label:14s} load average mean "
                  f"{fmt(v['load_mean'])} max {fmt(v['load_max'])}, CPU {fmt(v['cpu_busy_pct'])}% busy "
                  f"({v['seconds']} s sampled)")
    if before > 0.5 * cores:
        print(f"WARNING: load {before:.2f} before starting (> 0.5 per core): "
              "other work shared the machine")
    for n in names:
        print(f"{n} h5pyd check: {by[n][1].get('h5pyd_check')}")
    print(json.dumps({"scale": args.scale, "dn": args.dn, "runs": args.runs, "load": load_all,
                      "ceilings": ceilings, "client_bounds": {label: vals for label, _, vals in bounds},
                      "speed_probe_ms": probes, "samples": samples, "ratios": ratios, "detail": runs}))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
