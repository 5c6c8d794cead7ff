"""The simulator against local measurements: a record's scenario, and the table of
simulated vs measured times."""
from __future__ import annotations

import json

from .params import Scenario
from .plans import dn_plan, lambda_plan

# ----------------------------------------------------------------------------- validation

def record_scenario(base: Scenario, rec: dict) -> Scenario:
    """The scenario of one local measurement. Besides the required keys a record may
    give: stride, strided_dims, ratio, itemsize, rank, points, hit_rate (the read),
    pages (both plans) or dn_pages / lambda_pages, cold (true: new workers), per_call
    (the batch the real SN chose), jitter_ms (uniform 0..jitter added to the S3 latency),
    cores (the machine's), cached (the share of the dataset the DN caches have room for,
    above 1 with room to spare: a read that follows another of the same dataset finds
    what fits still in the caches; a DN's cache charges a chunk its stored bytes),
    dataset_chunks (the dataset's chunks, when the read touches only some), dn_chunks
    (the dataset's chunks on DN 0, 1, ...: its real placement, instead of random draws),
    answer_ratio (what zstd level 1 makes of the function's answer bytes). Without
    dataset_chunks, the sum of dn_chunks gives it, or else a cached share and the DNs'
    cache size (dn.cache_bytes), as the grid defines cached: min(1, DNs x cache /
    dataset bytes); for cached = 1 that is the biggest dataset that fits, exact in the
    grid (64 chunks of 64 KiB, 4 x 1 MiB; the 30 ms grid counted decoded bytes, which its
    data, compressed 1.08x, barely changes; later grids give dataset_chunks)."""
    read = {"kind": rec["kind"], "codec": rec["codec"], "chunks": int(rec["chunks"]),
            "chunk_bytes": int(rec["chunk_bytes"])}
    for key in ("itemsize", "rank", "ratio", "stride", "strided_dims", "points", "hit_rate",
                "pages", "answer_ratio"):
        if rec.get(key) is not None:
            read[key] = rec[key]
    lat, jitter = float(rec["s3_latency_ms"]), float(rec.get("jitter_ms") or 0.0)
    s3 = {"median_ms": lat + jitter / 2, "p99_ms": lat + jitter * 0.99}
    fn = {"max_concurrency": int(rec["workers"])}
    if rec.get("cold"):
        fn["warm"] = 0.0
    if rec.get("per_call"):
        fn["per_call"] = int(rec["per_call"])
    dn = {"count": int(rec["dn_count"])}
    if rec.get("cached") is not None:
        dn["cached"] = float(rec["cached"])
    if rec.get("dn_chunks") is not None:
        read["dn_chunks"] = tuple(int(k) for k in rec["dn_chunks"])
        if len(read["dn_chunks"]) != dn["count"]:
            raise ValueError(f"dn_chunks for {len(read['dn_chunks'])} DNs, dn_count "
                             f"{dn['count']}")
    if rec.get("dataset_chunks"):
        read["dataset_chunks"] = int(rec["dataset_chunks"])
    elif read.get("dn_chunks"):
        read["dataset_chunks"] = max(read["chunks"], sum(read["dn_chunks"]))
    elif rec.get("cached") and base.dn.cache_bytes:
        fits = dn["count"] * base.dn.cache_bytes / (dn["cached"] * read["chunk_bytes"])
        read["dataset_chunks"] = max(read["chunks"], round(fits))
    sc = base.set(read=read, s3=s3, dn=dn, fn=fn)
    if rec.get("cores"):
        sc = sc.set(machine={"cores": float(rec["cores"])})
    return sc


def validate(path: str, base: Scenario, current: bool = False) -> str:
    """A file is a list of measurements, or {"code": what ran, "set": the parameters in
    which that code differs from the preset's (sc.set() arguments), "records": [...]}:
    measurements of older code. current: leave "set" (and each record's per_call) out, so
    the table says what the current code would do on the same reads."""
    with open(path) as f:
        records = json.load(f)
    if isinstance(records, dict):
        if not current:
            try:
                base = base.set(**records.get("set", {}))
            except (TypeError, ValueError) as e:
                raise SystemExit(f"{path}: bad set: {e}") from None
        records = records.get("records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise SystemExit(f"{path}: expected a JSON list of measurement objects")
    if current:     # the batches the older SN chose are not the current one's
        records = [{k: v for k, v in r.items() if k != "per_call"} for r in records]
    lines = [f"{'kind':10s}{'codec':8s}{'chunks':>7s}{'KiB':>6s}{'DN':>4s}{'wkr':>4s}"
             f"{'S3ms':>5s}   {'DN sim':>7s}{'meas':>7s}{'ratio':>7s}   "
             f"{'λ sim':>7s}{'meas':>7s}{'ratio':>7s}"]
    ratios = []
    for rec in records:
        try:
            sc = record_scenario(base, rec)
        except (KeyError, TypeError, ValueError) as e:
            raise SystemExit(f"{path}: bad record {rec}: {e!r}") from None
        row = (f"{rec['kind']:10s}{rec['codec']:8s}{int(rec['chunks']):7d}"
               f"{int(rec['chunk_bytes']) // 1024:6d}{int(rec['dn_count']):4d}"
               f"{int(rec['workers']):4d}{float(rec['s3_latency_ms']):5.0f}   ")
        for plan, key, pages in ((dn_plan, "dn_ms", "dn_pages"),
                                 (lambda_plan, "lambda_ms", "lambda_pages")):
            if rec.get(pages):
                sim = plan(sc.set(read={"pages": int(rec[pages])}))
            else:
                sim = plan(sc)
            meas = rec.get(key)
            if meas:
                ratio = sim.latency_ms / float(meas)
                ratios.append(ratio)
                row += f"{sim.latency_ms:7.0f}{float(meas):7.0f}{ratio:7.2f}   "
            else:
                row += f"{sim.latency_ms:7.0f}{'-':>7s}{'-':>7s}   "
        lines.append(row.rstrip() + (f"   {rec['note']}" if rec.get("note") else ""))
    if ratios:
        worst = max(max(x, 1 / x) for x in ratios)
        inside = sum(1 / 1.5 <= x <= 1.5 for x in ratios)
        lines.append(f"\nratio = simulated / measured; {inside} of {len(ratios)} within 1.5x, "
                     f"worst {worst:.2f}x off")
    return "\n".join(lines)
