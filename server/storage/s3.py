"""S3 storage through aiobotocore: one client (one connection pool) per process; object
GETs, the hot path of every cold chunk read, are signed and sent by s3get.py instead
(half the CPU per GET), with the same faults handled the same way.

Faults (STORAGE.md, README "Storage faults"): botocore's "standard" retry mode
retries what S3 allows before an answer is parsed (5xx, SlowDown and other
throttling codes, connection resets, timeouts), with jittered exponential backoff
and a retry quota that stops retrying when S3 stays down. What it does not retry
is retried here: a response body cut short (Content-Length not reached), a read
timeout or reset while reading the body, and a body whose CRC does not match the
checksum S3 stored with the object (botocore validates it when present). Every
operation is bounded by `storage_timeout`. When S3 still fails, the error is
Unavailable (503: try again later); a missing key is NotFound; never a half read.
"""
import asyncio
import contextlib
import logging
import random

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (BotoCoreError, ClientError, FlexibleChecksumError,
                                 IncompleteReadError, ResponseStreamingError)

from ..core.errors import NotFound, PreconditionFailed, Unavailable
from ..signed import keys_of
from .base import Store, check_bucket, check_key
from .s3get import Missing, ObjectGetter, Retry

log = logging.getLogger("h5cloud.storage")

_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
# codes S3 uses for "not now" (botocore retries them; once it gives up they are 503s)
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
              "RequestTimeTooSkewed", "Throttling", "ThrottlingException",
              "RequestLimitExceeded", "BandwidthLimitExceeded", "TooManyRequestsException",
              "OperationAborted", "500", "502", "503", "504"}


class _BodyError(Exception):
    """Reading a response body failed after its headers arrived (botocore does not retry)."""


# failures botocore leaves to us: retried here (each attempt is a new request); GETs
# (s3get.py) leave all of theirs, S3's 'not now' answers included
_TRANSFER = (_BodyError, IncompleteReadError, ResponseStreamingError, FlexibleChecksumError,
             aiohttp.ClientPayloadError, Retry)


def _strip(bucket: str) -> str:
    return check_bucket(bucket.removeprefix("s3://"))


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3Store(Store):
    def __init__(self, endpoint: str = "", region: str = "us-east-1",
                 access_key: str = "", secret_key: str = "", max_connections: int = 64,
                 connect_timeout: float = 10.0, read_timeout: float = 30.0,
                 max_attempts: int = 5, retry_mode: str = "standard",
                 op_timeout: float = 45.0):
        self.max_attempts = max(1, int(max_attempts))
        self.op_timeout = op_timeout if op_timeout and op_timeout > 0 else None
        self._args = {"region_name": region or "us-east-1",
                      "config": AioConfig(max_pool_connections=max_connections,
                                          connect_timeout=connect_timeout,
                                          read_timeout=read_timeout,
                                          retries={"max_attempts": self.max_attempts,
                                                   "mode": retry_mode or "standard"})}
        if endpoint:
            self._args["endpoint_url"] = endpoint
        keys = keys_of(access_key, secret_key)
        if keys:
            self._args.update(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
            if keys[2]:
                self._args["aws_session_token"] = keys[2]
        self._stack = contextlib.AsyncExitStack()
        self._client = None
        self._session = get_session()
        self._getter = ObjectGetter(endpoint, self._args["region_name"], keys, self._session,
                                    connect_timeout, read_timeout, max_connections)

    @classmethod
    def from_settings(cls, settings) -> "S3Store":
        return cls(settings.aws_s3_gateway, settings.aws_region, settings.aws_access_key_id,
                   settings.aws_secret_access_key,
                   connect_timeout=settings.s3_connect_timeout,
                   read_timeout=settings.s3_read_timeout,
                   max_attempts=settings.s3_max_attempts,
                   retry_mode=settings.s3_retry_mode,
                   op_timeout=settings.storage_timeout,
                   max_connections=settings.aws_lambda_p_dn)

    async def client(self):
        if self._client is None:
            self._client = await self._stack.enter_async_context(
                self._session.create_client("s3", **self._args))
        return self._client

    async def _run(self, what: str, key: str, call):
        """await call() with the retries botocore leaves to us, within op_timeout; S3's
        'not now' answers and transport failures become Unavailable (503)."""
        try:
            return await asyncio.wait_for(self._attempts(what, key, call), self.op_timeout)
        except ClientError as e:
            if _code(e) in _TRANSIENT or _status(e) >= 500:
                log.info("storage unavailable: %s %s: %s", what, key, _describe(e))
                raise Unavailable(f"storage unavailable: {what} {key}: {_describe(e)}") from None
            raise
        except (BotoCoreError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            # connection refused/reset, timeouts: botocore has retried them already
            log.info("storage unavailable: %s %s: %s", what, key, _describe(e))
            raise Unavailable(f"storage unavailable: {what} {key}: {_describe(e)}") from None

    async def _attempts(self, what, key, call):
        for attempt in range(self.max_attempts):
            try:
                return await call()
            except _TRANSFER as e:
                if attempt + 1 >= self.max_attempts:
                    raise Unavailable(f"storage unavailable: {what} {key}: "
                                      f"{_describe(e)}") from None
                log.info("retrying %s %s after %s", what, key, _describe(e))
                await asyncio.sleep(random.uniform(0.5, 1.0) * min(2.0, 0.05 * 2 ** attempt))

    async def get(self, bucket, key):
        return (await self._get(bucket, key, None))[0]

    async def get_tagged(self, bucket, key):
        return await self._get(bucket, key, None)

    async def get_range(self, bucket, key, offset, length):
        if length <= 0:
            return b""
        return (await self._get(bucket, key, f"bytes={offset}-{offset + length - 1}"))[0]

    async def _get(self, bucket, key, byte_range):
        bucket, key = _strip(bucket), check_key(key)

        async def once():
            try:        # signed and sent without the SDK's per-call work (s3get.py)
                return await self._getter.get(bucket, key, byte_range)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    asyncio.TimeoutError) as e:       # cut short, reset, refused, timed out
                raise _BodyError(_describe(e)) from e

        try:
            return await self._run("GET", key, once)
        except Missing:
            raise NotFound(f"key not found: {key}") from None

    async def put(self, bucket, key, data):
        await self._put(bucket, key, data)

    async def put_if(self, bucket, key, data, tag):
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        return await self._put(bucket, key, data, **condition)

    async def _put(self, bucket, key, data, **condition):
        s3 = await self.client()
        body = bytes(data)

        async def once():
            rsp = await s3.put_object(Bucket=_strip(bucket), Key=check_key(key), Body=body,
                                      **condition)
            return rsp.get("ETag", "")

        try:
            return await self._run("PUT", key, once)
        except ClientError as e:
            code = _code(e)
            if code in _MISSING:
                raise NotFound(f"bucket not found: {bucket}") from None
            if condition and code in _RACE:
                raise PreconditionFailed(f"{key} changed since it was read") from None
            raise

    async def delete(self, bucket, key):
        s3 = await self.client()
        try:
            await self._run("DELETE", key, lambda: s3.delete_object(Bucket=_strip(bucket),
                                                                    Key=check_key(key)))
        except ClientError as e:
            if _code(e) not in _MISSING:
                raise

    async def exists(self, bucket, key):
        s3 = await self.client()
        try:
            await self._run("HEAD", key, lambda: s3.head_object(Bucket=_strip(bucket),
                                                                Key=check_key(key)))
            return True
        except ClientError as e:
            if _code(e) in _MISSING:
                return False
            raise

    async def _pages(self, bucket, prefix, delimiter, start_after=""):
        """list_objects_v2 pages, each call retried on its own (a paginator could not be)."""
        s3 = await self.client()
        args = {"Bucket": _strip(bucket), "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        if start_after:
            args["StartAfter"] = start_after
        while True:
            try:
                page = await self._run("LIST", prefix, lambda: s3.list_objects_v2(**args))
            except ClientError as e:
                if _code(e) in _MISSING:
                    raise NotFound(f"bucket not found: {bucket}") from None
                raise
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            args["ContinuationToken"] = token

    async def list_sizes(self, bucket, prefix):
        async for page in self._pages(bucket, prefix, None):
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    async def list_dirs(self, bucket, prefix, after=""):
        # S3 orders 'a-b/' before 'a/' (byte order of the whole prefix); sort by name
        # instead, as POSIX does, so the order agrees with name comparisons (Marker paging).
        # Every name greater than `after` has a key greater than prefix + after.
        dirs = [item["Prefix"] async for page in self._pages(bucket, prefix, "/", prefix + after
                                                              if after else "")
                for item in page.get("CommonPrefixes", [])]
        for d in sorted(dirs, key=lambda d: d[:-1]):
            if d[len(prefix):-1] > after:
                yield d

    async def close(self):
        await self._getter.close()
        await self._stack.aclose()
        self._client = None


def _describe(e: BaseException) -> str:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"S3 {err.get('Code') or _status(e)} ({err.get('Message') or 'no message'})"
    if isinstance(e, _BodyError):
        return f"reading the body: {e}"
    if isinstance(e, asyncio.TimeoutError) and not str(e):
        return "timed out"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
