"""Cost as work grows: h5cloud (and, with --hsds, stock HSDS 1.0.2) as data, links, domains
and data nodes grow.

    .venv/bin/python bench/scale.py [--quick] [--hsds] [--only data,links,domains,dns]
                                    [--sizes 0.25,1,4] [--links 100000] [--domains 10000]
                                    [--dns 1,2,4,8] [--dn-size 1] [--dn 4]

data     float32 datasets of --sizes GiB, 8,192 columns wide, 512x512 chunks (1 MiB):
         binary PUT .../value?select= in 32 MiB row blocks, PUT / {"flush": 1}, then binary
         GET of the same blocks. write_durable and read MiB/s count request time only (the
         client makes block i as one fixed random block + i and checks every block it reads
         back, so nothing big is kept). Peak RSS (VmHWM, reset before each size through
         /proc/<pid>/clear_refs) of the SN and of each DN, next to the cache settings.
links    one group, --links soft links created by PUT /groups/<id>/links {"links": {...}}
         in batches (ms per link, first vs last 10% of batches), listed with Limit/Marker
         paging (ms per page, first vs last 10%), and looked up one by one
         (GET /groups/<id>/links/<name>) near the start, middle and end: median ms.
domains  a folder with --domains domains (PUT /, ms per domain first vs last 10%), listed
         with GET /domains?domain=<folder>/&Limit=&Marker= (ms per page, first vs last 10%).
dns      one --dn-size GiB dataset written once, then read twice (1st: caches cold; 2nd)
         by fresh clusters of --dns data nodes over the same storage folder: MiB/s and
         MiB/s per DN. h5cloud runs these clusters with DIRECT_READS=never, so its DNs
         serve every read (with the default `auto` the SN reads flushed POSIX chunks itself).

Servers run on loopback only: h5cloud through server.launch.Cluster on free ports with
POSIX storage in a temporary folder, HSDS through ../shared/bench/hsds_anchor.sh in its own
network namespace (the client phases run inside it). Each phase is this script run as
`scale.py client ENDPOINT PHASE JSON`, which prints one JSON line. Tables per section
(h5cloud and HSDS side by side), then one JSON line with everything.
"""
import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import requests

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
ANCHOR = REPO.parent / "shared" / "bench" / "hsds_anchor.sh"
HSDS_VENV = REPO / ".venv-hsds"
sys.path.insert(0, str(REPO))

MIB, GIB = 2**20, 2**30
USER, ADMIN = ("test_user1", "test"), ("admin", "admin")
HOME = "/home/test_user1"
BIN = {"Content-Type": "application/octet-stream"}
ACC = {"Accept": "application/octet-stream"}
SEED = 20240601


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- client side: runs where the server is reachable ------------------------------------

class Fail(Exception):
    pass


class Http:
    """requests as test_user1; 503 (busy) is retried and counted."""

    def __init__(self, endpoint: str):
        self.ep = endpoint.rstrip("/")
        self.s = requests.Session()
        self.retries = 0

    def call(self, method, path, domain=None, ok=(200, 201), **kw):
        params = dict(kw.pop("params", {}))
        if domain:
            params["domain"] = domain
        for _ in range(200):
            r = self.s.request(method, self.ep + path, params=params, auth=USER, timeout=900, **kw)
            if r.status_code != 503 or 503 in ok:
                break
            self.retries += 1
            time.sleep(min(2.0, float(r.headers.get("Retry-After", 0.5))))
        if r.status_code not in ok:
            raise Fail(f"{method} {path} {params} -> {r.status_code} {r.text[:200]}")
        return r

    def timed(self, *a, **kw):
        t = time.perf_counter()
        r = self.call(*a, **kw)
        return r, time.perf_counter() - t


def flush(http, domain):
    """PUT / {"flush": 1} until everything is stored (HSDS 1.0.2 answers 500 when its
    flush_timeout passes first: ask again)."""
    for _ in range(100):
        r = http.call("PUT", "/", domain, ok=(200, 204, 500, 503), json={"flush": 1})
        if r.status_code < 500:
            return
        http.retries += 1
    raise Fail("flush incomplete after 100 tries")


def new_domain(http, stem):
    domain = f"{HOME}/{stem}_{uuid.uuid4().hex[:8]}.h5"
    return domain, http.call("PUT", "/", domain, json={}).json()["root"]


@functools.lru_cache(maxsize=2)
def base_block(rows, cols):
    rng = np.random.default_rng(SEED)
    return np.floor(rng.random((rows, cols), dtype=np.float32) * 1024) / np.float32(1024)


def block(i, rows, cols):
    """Row block i of the dataset: exact in float32, different for every block."""
    return base_block(rows, cols) + np.float32(i % 4096)


def shape_of(p):
    """rows, cols, block_rows for p = {"gib", "cols", "block_mib"}: whole blocks only."""
    cols = p["cols"]
    block_rows = max(1, int(p["block_mib"] * MIB) // (cols * 4))
    blocks = max(1, round(p["gib"] * GIB / (block_rows * cols * 4)))
    return blocks * block_rows, cols, block_rows


def make_dataset(http, p):
    rows, cols, _ = shape_of(p)
    domain, root = new_domain(http, "scale_data")
    body = {"type": "H5T_IEEE_F32LE", "shape": [rows, cols], "link": {"id": root, "name": "x"},
            "creationProperties": {"layout": {"class": "H5D_CHUNKED",
                                              "dims": [min(512, rows), min(512, cols)]}}}
    return domain, http.call("POST", "/datasets", domain, json=body).json()["id"]


def write_blocks(http, domain, did, p):
    """Every block by binary PUT, then a flush: (seconds acknowledged, seconds durable)."""
    rows, cols, br = shape_of(p)
    spent = 0.0
    for i, r0 in enumerate(range(0, rows, br)):
        data = block(i, br, cols).tobytes()
        _, t = http.timed("PUT", f"/datasets/{did}/value", domain, data=data, headers=BIN,
                          params={"select": f"[{r0}:{r0 + br},0:{cols}]"})
        spent += t
    t0 = time.perf_counter()
    flush(http, domain)
    return spent, spent + time.perf_counter() - t0


def read_blocks(http, domain, did, p):
    """Every block by binary GET, each checked against what was written: seconds."""
    rows, cols, br = shape_of(p)
    spent = 0.0
    for i, r0 in enumerate(range(0, rows, br)):
        r, t = http.timed("GET", f"/datasets/{did}/value", domain, headers=ACC,
                          params={"select": f"[{r0}:{r0 + br},0:{cols}]"})
        spent += t
        if not np.array_equal(np.frombuffer(r.content, np.float32), block(i, br, cols).ravel()):
            raise Fail(f"block {i} (rows {r0}..) read back wrong")
    return spent


def ends(samples):
    """Median of the first and of the last 10% of samples (at least one each)."""
    k = max(1, len(samples) // 10)
    return round(statistics.median(samples[:k]), 3), round(statistics.median(samples[-k:]), 3)


def phase_data(http, p):
    rows, cols, _ = shape_of(p)
    mib = rows * cols * 4 / MIB
    domain, did = make_dataset(http, p)
    log(f"  data {mib:.0f} MiB: write")
    ack, durable = write_blocks(http, domain, did, p)
    log(f"  data {mib:.0f} MiB: read")
    read = read_blocks(http, domain, did, p)
    return {"MiB": mib, "shape": [rows, cols], "write_MiBps": round(mib / ack, 1),
            "write_durable_MiBps": round(mib / durable, 1), "flush_s": round(durable - ack, 2),
            "read_MiBps": round(mib / read, 1)}


def phase_write(http, p):
    domain, did = make_dataset(http, p)
    ack, durable = write_blocks(http, domain, did, p)
    rows, cols, _ = shape_of(p)
    mib = rows * cols * 4 / MIB
    return {"domain": domain, "id": did, "write_durable_MiBps": round(mib / durable, 1)}


def phase_read(http, p):
    rows, cols, _ = shape_of(p)
    mib = rows * cols * 4 / MIB
    return {"MiB": mib, "read_MiBps": [round(mib / read_blocks(http, p["domain"], p["id"], p), 1)
                                       for _ in range(p["repeat"])]}


def list_pages(http, path, domain, page, name_of):
    """Every item of a Limit/Marker listing: (items, ms per page)."""
    items, times = [], []
    while True:
        q = {"Limit": page}
        if items:
            q["Marker"] = name_of(items[-1])
        r, t = http.timed("GET", path, domain, params=q)
        got = r.json()[path.strip("/").split("/")[-1]]
        items += got
        times.append(t * 1000)
        if len(got) < page:
            return items, times


def phase_links(http, p):
    n, batch, page = p["n"], p["batch"], p["page"]
    domain, root = new_domain(http, "scale_links")
    body = {"link": {"id": root, "name": "big"}}
    gid = http.call("POST", "/groups", domain, json=body).json()["id"]
    names = [f"link{i:07d}" for i in range(n)]
    create, total = [], 0.0
    log(f"  links: create {n} in batches of {batch}")
    for s in range(0, n, batch):
        body = {"links": {nm: {"h5path": f"/t/{nm}"} for nm in names[s:s + batch]}}
        _, t = http.timed("PUT", f"/groups/{gid}/links", domain, json=body)
        create.append(t * 1000 / len(body["links"]))
        total += t
    log(f"  links: list, {page} a page")
    links, pages = list_pages(http, f"/groups/{gid}/links", domain, page, lambda x: x["title"])
    if [x["title"] for x in links] != names:
        raise Fail(f"listing gave {len(links)} links, expected {n} in order")
    lookup = {}
    for where, at in (("start", 0), ("middle", n // 2), ("end", n - 1)):
        ts = []
        for nm in names[max(0, min(at, n - p["lookups"])):][:p["lookups"]]:
            r, t = http.timed("GET", f"/groups/{gid}/links/{nm}", domain)
            if r.json()["link"].get("h5path") != f"/t/{nm}":
                raise Fail(f"link {nm}: {r.text[:200]}")
            ts.append(t * 1000)
        lookup[where] = round(statistics.median(ts), 2)
    return {"n": n, "batch": batch, "page": page, "create_ms_per_link": ends(create),
            "create_s": round(total, 1), "list_ms_per_page": ends(pages),
            "list_s": round(sum(pages) / 1000, 1), "listed": len(links), "lookup_ms": lookup}


def phase_domains(http, p):
    n, page = p["n"], p["page"]
    folder = f"{HOME}/scale_dirs_{uuid.uuid4().hex[:8]}"
    http.call("PUT", "/", folder, json={"folder": True})
    names = [f"{folder}/d{i:06d}.h5" for i in range(n)]
    log(f"  domains: create {n}")
    create = [http.timed("PUT", "/", nm, json={})[1] * 1000 for nm in names]
    log(f"  domains: list, {page} a page")
    items, pages = list_pages(http, "/domains", folder + "/", page, lambda x: x["name"])
    if [x["name"] for x in items] != names:
        raise Fail(f"listing gave {len(items)} domains, expected {n} in order")
    return {"n": n, "page": page, "create_ms": ends(create),
            "create_s": round(sum(create) / 1000, 1), "list_ms_per_page": ends(pages),
            "list_s": round(sum(pages) / 1000, 1), "listed": len(items)}


PHASES = {"data": phase_data, "write": phase_write, "read": phase_read,
          "links": phase_links, "domains": phase_domains}


def client_main(endpoint, phase, params):
    from server.launch import make_home_folders
    try:
        make_home_folders(endpoint, *ADMIN, [USER[0]])
        http = Http(endpoint)
        out = PHASES[phase](http, params)
        out["retries"] = http.retries
    except Exception as e:  # reported in the tables, not hidden
        out = {"error": f"{type(e).__name__}: {e}"[:300]}
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1


# ---- servers --------------------------------------------------------------------------

def proc_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_peaks(pids):
    for pid in pids.values():   # 5: reset the peak RSS (VmHWM) to the current RSS
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:         # gone: peaks() leaves it out
            pass


def peaks(pids):
    """Peak RSS in MiB of the SN and of each DN still running."""
    mib = {}
    for name, pid in sorted(pids.items()):
        try:
            mib[name] = round(proc_kib(pid, "VmHWM") / 1024)
        except OSError:
            pass
    return {"sn": mib.get("sn"), "dn": [v for k, v in mib.items() if k.startswith("dn")]}


def mib_text(n):
    return f"{n / MIB:g}m"


class H5cloud:
    """1 SN + dn DNs over the POSIX folder work/data (kept between clusters)."""
    name, runner = "h5cloud", ()

    def __init__(self, work: Path, dn: int, **env):
        self.work, self.dn, self.extra = work, dn, env
        self.env = dict(os.environ)

    def __enter__(self):
        from server.launch import Cluster, free_ports
        (self.work / "data" / "hsdstest").mkdir(parents=True, exist_ok=True)
        (self.work / "passwd.txt").write_text("admin:admin\ntest_user1:test\ntest_user2:test\n")
        base = free_ports(self.dn + 1)
        env = {**os.environ, "ROOT_DIR": str(self.work / "data"), "BUCKET_NAME": "hsdstest",
               "PASSWORD_FILE": str(self.work / "passwd.txt"), "SN_PORT": str(base),
               "DN_PORT": str(base + 1), "LOG_LEVEL": "WARNING", **self.extra}
        env.pop("AWS_S3_GATEWAY", None)
        self.run = self.work / f"run-{uuid.uuid4().hex[:6]}"
        self.cluster = Cluster(self.run, self.dn, env).start()
        self.endpoint = self.cluster.endpoint
        return self

    def __exit__(self, *exc):
        self.cluster.stop()

    def pids(self):
        return {p.stem.replace("-", ""): int(p.read_text()) for p in self.run.glob("*.pid")}

    def settings(self):
        s = self.cluster.settings
        return {"chunk_mem_cache_size": mib_text(s.chunk_mem_cache_size),
                "metadata_mem_cache_size": mib_text(s.metadata_mem_cache_size),
                "max_request_size": mib_text(s.max_request_size), "direct_reads": s.direct_reads}


class Hsds:
    """Stock HSDS 1.0.2 through hsds_anchor.sh; storage work/hsds/hsds_data is kept."""
    name, endpoint = "hsds", "http://127.0.0.1:5101"
    runner = ("bash", str(ANCHOR), "exec")

    def __init__(self, work: Path, dn: int, **_):
        self.env = {**os.environ, "ANCHOR_DIR": str(work / "hsds"), "HSDS_VENV": str(HSDS_VENV),
                    "HSDS_DN_COUNT": str(dn)}
        self.pidfile = work / "hsds" / "hsds_run" / "hsds.pid"

    def anchor(self, action, check=False):
        subprocess.run(["bash", str(ANCHOR), action], env=self.env, check=check, timeout=300,
                       stdout=sys.stderr)

    def __enter__(self):
        from compare import hsds_venv       # makes .venv-hsds on first use
        hsds_venv()
        try:
            self.anchor("start", check=True)
        except BaseException:
            self.anchor("stop")
            raise
        return self

    def __exit__(self, *exc):
        self.anchor("stop")

    def pids(self):
        launcher = self.pidfile.read_text().strip()
        kids = " ".join(p.read_text() for p in Path(f"/proc/{launcher}/task").glob("*/children"))
        out = {}
        for pid in map(int, kids.split()):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            if "--node_type=sn" in args:
                out["sn"] = pid
            elif "--node_type=dn" in args:
                num = next(a for a in args if a.startswith("--node_number=")).split("=")[1]
                out[f"dn{int(num) + 1:03d}"] = pid
        return out

    def settings(self):
        import yaml
        path = next(HSDS_VENV.glob("lib/python*/site-packages/admin/config/config.yml"))
        conf = yaml.safe_load(path.read_text())
        return {k: conf.get(k) for k in ("chunk_mem_cache_size", "metadata_mem_cache_size",
                                         "max_request_size", "data_cache_size")}


def run_client(srv, phase, params, timeout):
    """This script's client PHASE against srv (inside HSDS's netns); its JSON answer, with the
    peak RSS of every server process during it."""
    cmd = [*srv.runner, sys.executable, str(HERE), "client", srv.endpoint, phase,
           json.dumps(params)]
    reset_peaks(srv.pids())
    proc = subprocess.Popen(cmd, env=srv.env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"error": f"{phase}: no answer after {timeout} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    res = json.loads(lines[-1]) if lines else {"error": f"{phase}: exit {proc.returncode}, no JSON"}
    res["rss_MiB"] = peaks(srv.pids())
    return res


# ---- sections -------------------------------------------------------------------------

def data_params(args, gib):
    return {"gib": gib, "cols": args.cols, "block_mib": args.block_mib}


def main_sections(kind, work, args, out):
    with kind(work, args.dn) as srv:
        out["settings"] = srv.settings()
        if "data" in args.only:
            out["data"] = []
            for gib in args.sizes:
                log(f"{srv.name}: data {gib} GiB")
                res = run_client(srv, "data", data_params(args, gib), args.timeout)
                out["data"].append({"gib": gib, **res})
        if "links" in args.only:
            log(f"{srv.name}: links {args.links}")
            n = args.links
            p = {"n": n, "batch": min(1000, max(1, n // 50)), "page": min(1000, max(1, n // 20)),
                 "lookups": min(100, n)}
            out["links"] = run_client(srv, "links", p, args.timeout)
        if "domains" in args.only:
            log(f"{srv.name}: domains {args.domains}")
            p = {"n": args.domains, "page": min(1000, max(1, args.domains // 10))}
            out["domains"] = run_client(srv, "domains", p, args.timeout)


def dn_sweep(kind, work, args) -> list:
    p = data_params(args, args.dn_size)
    with kind(work, args.dn) as srv:
        log(f"{srv.name}: dns: write {args.dn_size} GiB with {args.dn} DNs")
        written = run_client(srv, "write", p, args.timeout)
    if "error" in written:
        return [written]
    rows = []
    for n in args.dns:
        with kind(work, n, DIRECT_READS="never") as srv:
            log(f"{srv.name}: dns: read with {n} DNs")
            where = {"domain": written["domain"], "id": written["id"], "repeat": 2}
            res = run_client(srv, "read", {**p, **where}, args.timeout)
        rows.append({"dn": n, **res})
    return rows


def bench(kind, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="scale_") as tmp:
        out = {}
        try:
            if set(args.only) - {"dns"}:
                main_sections(kind, Path(tmp), args, out)
            if "dns" in args.only:
                out["dns"] = dn_sweep(kind, Path(tmp), args)
        except Exception as e:
            out["error"] = f"{type(e).__name__}: {e}"[:300]
        return out


# ---- report ---------------------------------------------------------------------------

def data_rows(res):
    rows = {}
    for r in res.get("data", []):
        if "error" in r:
            rows[f"{r['gib']:g} GiB: error"] = r["error"]
            continue
        at = f"{r['MiB']:6.0f} MiB"
        rows[f"{at} write durable MiB/s"] = r["write_durable_MiBps"]
        rows[f"{at} read MiB/s"] = r["read_MiBps"]
        rows[f"{at} flush s"] = r["flush_s"]
        rows[f"{at} SN peak RSS MiB"] = r["rss_MiB"]["sn"]
        rows[f"{at} DN peak RSS MiB, max"] = max(r["rss_MiB"]["dn"], default=None)
        if r.get("retries"):
            rows[f"{at} retries (503s, flush 500s)"] = r["retries"]
    return rows


def links_rows(res):
    r = res.get("links", {})
    if "error" in r or not r:
        return {"error": r.get("error")} if r else {}
    return {"links": r["n"], "create ms/link, first 10%": r["create_ms_per_link"][0],
            "create ms/link, last 10%": r["create_ms_per_link"][1],
            f"list ms/page of {r['page']}, first 10%": r["list_ms_per_page"][0],
            f"list ms/page of {r['page']}, last 10%": r["list_ms_per_page"][1],
            **{f"lookup ms, {k}": v for k, v in r["lookup_ms"].items()},
            "create total s": r["create_s"], "list total s": r["list_s"],
            "SN peak RSS MiB": r["rss_MiB"]["sn"],
            "DN peak RSS MiB, max": max(r["rss_MiB"]["dn"], default=None)}


def domains_rows(res):
    r = res.get("domains", {})
    if "error" in r or not r:
        return {"error": r.get("error")} if r else {}
    return {"domains": r["n"], "create ms/domain, first 10%": r["create_ms"][0],
            "create ms/domain, last 10%": r["create_ms"][1],
            f"list ms/page of {r['page']}, first 10%": r["list_ms_per_page"][0],
            f"list ms/page of {r['page']}, last 10%": r["list_ms_per_page"][1],
            "create total s": r["create_s"], "list total s": r["list_s"]}


def dns_rows(res):
    rows = {}
    for r in res.get("dns", []):
        if "error" in r:
            rows[f"{r.get('dn', '?')} DNs: error"] = r["error"]
            continue
        first, second = r["read_MiBps"]
        rows[f"{r['dn']} DNs: read MiB/s, 1st"] = first
        rows[f"{r['dn']} DNs: read MiB/s, 2nd"] = second
        rows[f"{r['dn']} DNs: MiB/s per DN, best"] = round(max(first, second) / r["dn"], 1)
        rows[f"{r['dn']} DNs: DN peak RSS MiB, max"] = max(r["rss_MiB"]["dn"], default=None)
    return rows


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return str(v)[:60]


def table(title, ours: dict, theirs: dict, with_hsds: bool):
    if not ours and not theirs:
        return
    print(f"\n{title}")
    print(f"  {'':38s} {'h5cloud':>10s}" + (f" {'HSDS':>10s}" if with_hsds else ""))
    for label in dict.fromkeys([*ours, *theirs]):
        line = f"  {label:38s} {fmt(ours.get(label)):>10s}"
        print(line + (f" {fmt(theirs.get(label)):>10s}" if with_hsds else ""))


def report(args, ours, theirs):
    h = args.hsds
    for name, res in (("h5cloud", ours), ("HSDS", theirs)):
        if res.get("error"):
            print(f"\n{name} FAILED: {res['error']}")
        if res.get("settings"):
            print(f"{name} settings: {res['settings']}")
    table(f"data: {args.block_mib:g} MiB blocks, {args.cols} columns, 512x512 chunks",
          data_rows(ours), data_rows(theirs), h)
    table("links: one group", links_rows(ours), links_rows(theirs), h)
    table("domains: one folder", domains_rows(ours), domains_rows(theirs), h)
    table(f"dns: {args.dn_size:g} GiB read by fresh clusters (h5cloud: DIRECT_READS=never)",
          dns_rows(ours), dns_rows(theirs), h)
    print(json.dumps({"args": vars(args), "h5cloud": ours, "hsds": theirs}))


def floats(text):
    return [float(x) for x in text.split(",")]


def main():
    if sys.argv[1:2] == ["client"]:
        _, _, endpoint, phase, params = sys.argv
        return client_main(endpoint, phase, json.loads(params))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="64 and 128 MiB, 5,000 links, 500 domains, DNs 1,2 on 128 MiB")
    p.add_argument("--hsds", action="store_true", help="run stock HSDS 1.0.2 too")
    p.add_argument("--only", default="data,links,domains,dns")
    p.add_argument("--sizes", type=floats, default=[0.25, 1, 4], help="GiB, comma separated")
    p.add_argument("--links", type=int, default=100_000)
    p.add_argument("--domains", type=int, default=10_000)
    p.add_argument("--dns", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2, 4, 8])
    p.add_argument("--dn-size", type=float, default=1.0, help="GiB read by the DN sweep")
    p.add_argument("--dn", type=int, default=4, help="DNs for the data, links, domains sections")
    p.add_argument("--block-mib", type=float, default=32)
    p.add_argument("--cols", type=int, default=8192)
    p.add_argument("--timeout", type=float, default=7200, help="seconds one phase may take")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.links, args.domains = [0.0625, 0.125], 5000, 500
        args.dns, args.dn_size = [1, 2], 0.125
    args.only = args.only.split(",")
    ours = bench(H5cloud, args)
    theirs = bench(Hsds, args) if args.hsds else {}
    report(args, ours, theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
