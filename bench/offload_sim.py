"""Discrete-event simulation of one chunked read: the DN plan against the Lambda plan.

    .venv/bin/python bench/offload_sim.py                    # AWS-scale tables (+ plot if asked)
    .venv/bin/python bench/offload_sim.py --plot bench/offload_sim.png
    .venv/bin/python bench/offload_sim.py --kind column --codec deflate --chunks 10000 --dn 8
    .venv/bin/python bench/offload_sim.py --validate measurements.json [--preset local]

What is simulated (bench/OFFLOAD_SIM.md has the parameter values and their sources):

- DN plan: the SN turns the selection into chunk tasks and sends each DN its share in
  one call (chunk i -> DN i mod N, hashed, or as the dataset really lies); a call
  costs the SN and the DN a fixed CPU. Per DN: S3 GETs through a pool of `connections`
  (a chunk waits for a free connection; a GET takes a lognormal first-byte latency plus
  size / per-connection throughput), then the DN's network interface, then its one
  core (SDK CPU per GET, decode, select, frame the answer), then its link to the SN. The
  SN's one core assembles the pieces of all DNs in arrival order. A chunk the DN holds
  decoded in its cache skips the GET and the decode; each DN's cache has room for an
  even share of the cached part of the dataset. A query takes its chunks in order with
  a window of loads ahead.
- Lambda plan: the chunks go out in invocations of `per_call` chunks. An invocation
  takes one of `max_concurrency` slots, the SN's core spends CPU to send it, the call
  pays the invoke overhead (plus a cold start when it is the first use of a new
  instance and that instance is cold), the function fetches its chunks through 16
  connections, then decodes, selects, zstd-compresses an answer that shrinks by a fifth
  (chunk_read's rule) and base64-encodes on its CPU share (memory/1769 of a vCPU), the
  answer travels back (locally through one relaying gateway process), the slot is
  freed, and the SN's core base64-decodes, decompresses and copies the answer. Both plans
  pay the same per-request costs (the SN's and the client's CPU, a query's JSON).

Every resource is a FIFO queue in front of c servers. Where jobs flow one way through a
chain of queues (GET pool -> NIC -> core -> link -> SN), the departures of one queue are
the arrivals of the next, and a FIFO queue's departures follow from its arrivals and
service times alone, so each queue is simulated in one pass over its jobs (Lindley's
recursion, vectorised with numpy, for one server; a heap of free times for c servers).
Where a resource is held across other queues - a Lambda slot is held for the whole
invocation, and the SN's single core both sends invocations and ingests their answers -
a small event engine (heapq) drives the invocations. Events per chunk stay O(1).

Times are ms, sizes bytes, rates MB/s (1e6 bytes/s). Deterministic for a seed: the
random draws depend only on the seed and the chunk count (common random numbers), so
two scenarios that differ in one parameter see the same S3 latencies.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # bench/offsim, run as a script

# the whole simulator under one name (tests and notebooks use offload_sim.X)
from offsim.params import *       # noqa: E402,F401,F403
from offsim.queues import *       # noqa: E402,F401,F403
from offsim.plans import *        # noqa: E402,F401,F403
from offsim.report import *       # noqa: E402,F401,F403
from offsim.validation import *   # noqa: E402,F401,F403
from offsim.params import CODECS, KINDS, preset             # noqa: E402
from offsim.plans import both                               # noqa: E402
from offsim.report import aws_tables                        # noqa: E402
from offsim.validation import validate                      # noqa: E402

# ----------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=("aws", "local"), default=None,
                   help="parameter preset (default: aws; local with --validate)")
    p.add_argument("--validate", metavar="FILE.json", help="compare with local measurements")
    p.add_argument("--current", action="store_true", help="with --validate: ignore the "
                   "file's \"set\" (older code's parameters): the current code on its reads")
    p.add_argument("--plot", metavar="PNG", help="latency vs chunk count, log-log")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cores", type=float, help="the machine's cores (local preset: 2); on a "
                   "machine shared with other work, the cores left to the run")
    one = p.add_argument_group("one scenario (instead of the tables)")
    one.add_argument("--kind", choices=KINDS)
    one.add_argument("--codec", choices=CODECS, default="deflate")
    one.add_argument("--chunks", type=int, default=10000)
    one.add_argument("--chunk-kib", type=int, default=1024)
    one.add_argument("--dn", type=int, default=8)
    one.add_argument("--cached", type=float, default=0.0)
    one.add_argument("--memory", type=int, default=1769)
    one.add_argument("--concurrency", type=int, default=1000)
    one.add_argument("--warm", type=float, default=1.0)
    a = p.parse_args(argv)
    base = preset(a.preset or ("local" if a.validate else "aws")).set(seed=a.seed)
    if a.cores:
        base = base.set(machine={"cores": a.cores})
    if a.validate:
        print(f"preset {a.preset or 'local'}: simulated vs measured (ms)\n")
        print(validate(a.validate, base, a.current))
        return 0
    if a.kind:
        sc = base.set(read={"kind": a.kind, "codec": a.codec, "chunks": a.chunks,
                            "chunk_bytes": a.chunk_kib * 1024},
                      dn={"count": a.dn, "cached": a.cached},
                      fn={"memory_mb": a.memory, "max_concurrency": a.concurrency,
                          "warm": a.warm})
        d, f = both(sc)
        print(f"DN plan     {d.latency_ms:10.1f} ms  ${d.cost_usd:.3g}  {d.detail}")
        print(f"Lambda plan {f.latency_ms:10.1f} ms  ${f.cost_usd:.3g}  {f.detail}")
        return 0
    start = time.perf_counter()
    print(aws_tables(base, plot=a.plot))
    if not a.plot:
        print("\n(no --plot PNG given: plot skipped)")
    print(f"\n({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
