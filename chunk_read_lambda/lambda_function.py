"""chunk_read: read a batch of chunks of one dataset straight from S3, select, return
the bytes (docs/spec LAMBDA.md, Part A). A thin shell over server.core — the same
selection, chunk kernel and query code the data nodes use. It never writes.

Event: {"request_id", "bucket", "dataset": {"id", "type", "shape", "layout",
"filters", "fillValue"[, "fillValue_encoding"]}, "kind": "hyperslab"|"points"|"query",
"chunks": [{"id", "select" | "points" | "query"[, "limit"][, "s3"]}]}
Answer: {"status", "data" (base64 of the parts), "parts": [{"id", "offset", "size",
"found"}], "query": {id: {"index", "values_offset", "values_size"}}, "stats"}; with
"encoding": "zstd" the parts were zstd-compressed before base64 (when that is shorter:
the SN then ingests fewer bytes).
"""
import concurrent.futures
import json
import logging
import os
import random
import threading
import time

import numpy as np
import pybase64

from server.core import chunks as kernel
from server.core import ids, layout, s3rest, types, values
from server.core.errors import HttpError
from server.core.query import parse_query

MAX_OUT = 4 * 1024 * 1024            # raw bytes; base64 and JSON keep it under 6 MB
THREADS = 16                         # S3 latency dominates: overlap the GETs (and decodes)
COMPRESS_MIN = 64 * 1024             # answers smaller than this go as they are
COMPRESS_GAIN = 0.8                  # compressed only when at most this share of the raw

log = logging.getLogger("chunk_read")
log.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
_getter = None
_getter_lock = threading.Lock()
ATTEMPTS = 4                         # per GET, as botocore's retries: 'not now' answers


class Failure(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class _Again(Exception):
    """S3 said 'not now', or the body was cut short or damaged on the way."""


class Getter:
    """Object GETs signed by botocore's S3 SigV4 signer and sent with urllib3, both of
    which the runtime ships: half the CPU of botocore's get_object (measured against
    moto: 5.2 vs 2.5 ms per 256 KiB GET), which a function with 1/14 of a vCPU at
    128 MB feels most. Retried as botocore would: 5xx, throttling, dropped or damaged
    bodies (CRC32, when S3 stored one)."""

    def __init__(self):
        import botocore.session
        import urllib3
        self.credentials = botocore.session.get_session().get_credentials()
        self.region = os.environ.get("AWS_REGION", "us-east-1")
        self.gateway = (os.environ.get("AWS_S3_GATEWAY") or "").rstrip("/")
        self.pool = urllib3.PoolManager(maxsize=THREADS, retries=False,
                                        timeout=urllib3.Timeout(connect=5, read=60))

    def get(self, bucket: str, key: str, byte_range: str | None):
        """The object's bytes (or the range's); None when there is no such key."""
        for attempt in range(ATTEMPTS):
            try:
                return self._once(bucket, key, byte_range)
            except _Again as e:
                if attempt == ATTEMPTS - 1:
                    raise Failure(503, f"storage: {e}") from None
                time.sleep(random.uniform(0, 0.05 * 2 ** attempt))

    def _once(self, bucket, key, byte_range):
        import urllib3
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        if self.credentials is None:
            raise Failure(403, "no AWS credentials")
        headers = dict(s3rest.GET_HEADERS)
        if byte_range:
            headers["Range"] = byte_range
        url = s3rest.object_url(self.gateway, self.region, bucket, key)
        request = AWSRequest(method="GET", url=url, headers=headers)
        S3SigV4Auth(self.credentials.get_frozen_credentials(), "s3",
                    self.region).add_auth(request)
        try:
            rsp = self.pool.request("GET", request.url, headers=dict(request.headers.items()),
                                    decode_content=False)
        except urllib3.exceptions.HTTPError as e:   # refused, reset, timed out, cut short
            raise _Again(f"{type(e).__name__}: {e}") from None
        body = rsp.data
        if rsp.status in (200, 206):
            if not s3rest.crc_ok(rsp.headers, body):
                raise _Again("the body's CRC32 differs from S3's checksum")
            return body
        code = s3rest.error_code(rsp.status, body)
        if code == "NoSuchBucket":
            raise Failure(404, f"bucket not found: {bucket}")
        if rsp.status == 404:
            return None
        if rsp.status == 416:
            return b""
        if rsp.status == 403:
            raise Failure(403, f"access denied: {bucket}")
        if s3rest.try_again(rsp.status, code):
            raise _Again(f"S3 {code} ({rsp.status})")
        raise Failure(502, f"S3 answered {rsp.status} {code} for {key}")


def getter() -> Getter:
    """One per warm container, made once even when the first batch's threads all ask."""
    global _getter
    with _getter_lock:
        if _getter is None:
            _getter = Getter()
    return _getter


def fetch(bucket: str, item: dict):
    """The stored bytes of a chunk (or its referenced range); None when it does not exist."""
    ref = item.get("s3")
    if ref:
        return getter().get(ref["bucket"], ref["key"],
                            f"bytes={ref['offset']}-{ref['offset'] + ref['size'] - 1}")
    return getter().get(bucket, ids.chunk_key(item["id"]), None)


def dataset_doc(event) -> dict:
    d = event["dataset"]
    props = {"layout": d.get("layout") or {}, "filters": d.get("filters") or []}
    for key in ("fillValue", "fillValue_encoding", "initializer"):
        if key in d:
            props[key] = d[key]
    return {"id": d["id"], "type": d["type"], "shape": d["shape"],
            "creationProperties": props}


def select(kind, item, arr, type_json, query=None):
    """(bytes, query info) for one chunk: the same encoding a DN answers with."""
    if kind == "hyperslab":
        sel = tuple(slice(a, b, c) for a, b, c in item["select"])
        return values.to_bytes(arr[sel], type_json, wire=False), None
    if kind == "points":
        rank = arr.ndim - len(types.array_dims(type_json))
        coords = np.frombuffer(pybase64.b64decode(item["points"], validate=True), "<u8")
        coords = coords.astype(np.intp).reshape(-1, rank)
        return values.to_bytes(arr[tuple(coords.T)], type_json, wire=False), None
    sel = tuple(slice(a, b, c) for a, b, c in item.get("select") or [[0, arr.shape[0], 1]])
    rows = arr[sel]
    hits = np.flatnonzero(query.mask(rows))
    if item.get("limit"):
        hits = hits[:int(item["limit"])]
    return values.to_bytes(np.take(rows, hits), type_json, wire=False), hits.tolist()


def run(event) -> dict:
    if not isinstance(event, dict) or not isinstance(event.get("chunks"), list):
        raise Failure(400, "the event needs bucket, dataset, kind and chunks")
    kind = event.get("kind")
    if kind not in ("hyperslab", "points", "query"):
        raise Failure(400, f"unknown kind: {kind!r}")
    doc = dataset_doc(event)
    chunk_dims = layout.chunk_dims_of(doc)
    codec = kernel.codec_for(doc, chunk_dims)
    query = None
    if kind == "query":
        texts = {item.get("query") for item in event["chunks"]}
        if len(texts) != 1 or None in texts:
            raise Failure(400, "a query batch needs one query")
        query = parse_query(texts.pop(), types.dtype_of(doc["type"]))
    items = event["chunks"]

    def load(item):
        """Fetch and decode one chunk (None: not in storage); in the pool's threads, so
        one chunk decodes while others are fetched (zlib-ng and zstd free the GIL)."""
        data = fetch(event["bucket"], item)
        if data is None:
            return None, 0
        return codec.decode(data, pad=bool(item.get("s3")), writable=False), len(data)

    with concurrent.futures.ThreadPoolExecutor(min(THREADS, max(1, len(items)))) as pool:
        loaded = list(pool.map(load, items))
    out, parts, query_info, offset, read = [], [], {}, 0, 0
    for item, (arr, size) in zip(items, loaded):
        read += size
        if arr is None and kind != "query":      # the SN fills it, as for a DN answer
            parts.append({"id": item["id"], "offset": offset, "size": 0, "found": False})
            continue
        if arr is None:
            arr = codec.missing(ids.chunk_index(item["id"]))
        piece, hits = select(kind, item, arr, doc["type"], query)
        parts.append({"id": item["id"], "offset": offset, "size": len(piece), "found": True})
        if hits is not None:
            query_info[item["id"]] = {"index": hits, "values_offset": offset,
                                      "values_size": len(piece)}
        out.append(piece)
        offset += len(piece)
        if offset > MAX_OUT:
            raise Failure(413, f"more than {MAX_OUT} bytes of results; send smaller batches")
    raw, encoding = b"".join(out), None
    if len(raw) >= COMPRESS_MIN:
        import zstandard
        packed = zstandard.ZstdCompressor(level=1).compress(raw)
        if len(packed) <= COMPRESS_GAIN * len(raw):
            raw, encoding = packed, "zstd"
    # pybase64 (SIMD): 4x the standard library's speed, on a CPU share of 1/14 at 128 MB
    answer = {"status": 200, "data": pybase64.b64encode(raw).decode("ascii"), "parts": parts}
    if encoding:
        answer["encoding"] = encoding
    if query_info:
        answer["query"] = query_info
    answer["stats"] = {"chunks": len(items), "bytes_read": read, "bytes_out": offset,
                       "bytes_sent": len(raw)}
    return answer


def lambda_handler(event, context):
    start = time.time()
    request_id = (event or {}).get("request_id") if isinstance(event, dict) else None
    try:
        answer = run(event)
    except Failure as e:
        answer = {"status": e.status, "error": e.message}
    except HttpError as e:          # the kernel's own 4xx (bad selection, bad query...)
        answer = {"status": e.status, "error": e.message}
    except (KeyError, TypeError, ValueError) as e:
        answer = {"status": 400, "error": f"bad event: {e}"}
    ms = round((time.time() - start) * 1000, 1)
    stats = answer.setdefault("stats", {})
    stats["ms"] = ms
    # one JSON line per invocation, plus CloudWatch Embedded Metric Format metrics
    name = getattr(context, "function_name", None) or \
        os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "chunk_read")
    print(json.dumps({"request_id": request_id, "status": answer["status"],
                      "chunks": stats.get("chunks", 0), "bytes": stats.get("bytes_out", 0),
                      "ms": ms, "_aws": {"Timestamp": int(start * 1000), "CloudWatchMetrics": [{
                          "Namespace": "h5cloud", "Dimensions": [["FunctionName"]],
                          "Metrics": [{"Name": "ChunksRead", "Unit": "Count"},
                                      {"Name": "BytesRead", "Unit": "Bytes"},
                                      {"Name": "ReadMs", "Unit": "Milliseconds"}]}]},
                      "FunctionName": name, "ChunksRead": stats.get("chunks", 0),
                      "BytesRead": stats.get("bytes_read", 0), "ReadMs": ms}))
    return answer
