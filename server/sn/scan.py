"""Domain statistics (REST_API.md §4.1.2, §14.2), computed on demand from a listing
of the domain's keys (HSDS scans in the background; the numbers are the same)."""
import time

from ..core import ids

SUMMARIES = (".info.json", ".summary.json")


async def scan(store, bucket: str, root_id: str, domain_doc: dict) -> dict:
    start = time.time()
    counts = {"g": 0, "d": 0, "t": 0}
    chunks = allocated = metadata = 0
    datasets = {}
    async for key, size in store.list_sizes(bucket, ids.root_prefix(root_id)):
        name = key.rsplit("/", 1)[-1]
        if name in SUMMARIES:
            continue
        if name.endswith(".json"):
            kind = {".group.json": "g", ".dataset.json": "d", ".datatype.json": "t"}.get(name)
            if kind:
                counts[kind] += 1
                metadata += size
            continue
        obj = ids.key_to_id(key)
        if obj is None:
            continue
        chunks += 1
        allocated += size
        dset = "d-" + obj.split("-", 1)[1].split("_", 1)[0]
        entry = datasets.setdefault(dset, {"num_chunks": 0, "allocated_bytes": 0})
        entry["num_chunks"] += 1
        entry["allocated_bytes"] += size
    domain_size = len(str(domain_doc))
    info = {"num_groups": counts["g"], "num_datasets": counts["d"],
            "num_datatypes": counts["t"], "num_chunks": chunks,
            "allocated_bytes": allocated, "metadata_bytes": metadata,
            "linked_bytes": 0, "num_linked_chunks": 0, "logical_bytes": 0,
            "datasets": datasets, "bucket": bucket, "md5_sum": "",
            "scan_start": start, "scan_complete": time.time()}
    stats = {k: info[k] for k in ("num_groups", "num_datasets", "num_datatypes", "num_chunks",
                                  "allocated_bytes", "metadata_bytes", "linked_bytes",
                                  "num_linked_chunks", "md5_sum")}
    stats["num_objects"] = counts["g"] + counts["d"] + counts["t"] + chunks
    stats["total_size"] = domain_size + allocated + metadata
    stats["scan_info"] = info
    return stats
