"""S3 storage through aiobotocore: one client (one connection pool) per process."""
import contextlib
import os

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from ..core.errors import NotFound, PreconditionFailed
from .base import Store, check_bucket, check_key

_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def _strip(bucket: str) -> str:
    return check_bucket(bucket.removeprefix("s3://"))


class S3Store(Store):
    def __init__(self, endpoint: str = "", region: str = "us-east-1",
                 access_key: str = "", secret_key: str = "", max_connections: int = 64):
        self._args = {"region_name": region or "us-east-1",
                      "config": AioConfig(max_pool_connections=max_connections,
                                          retries={"max_attempts": 3, "mode": "standard"})}
        if endpoint:
            self._args["endpoint_url"] = endpoint
        if access_key and secret_key:
            self._args["aws_access_key_id"] = access_key
            self._args["aws_secret_access_key"] = secret_key
            # a role's keys (Lambda, ECS) come with a session token beside them
            if access_key == os.environ.get("AWS_ACCESS_KEY_ID") and \
                    os.environ.get("AWS_SESSION_TOKEN"):
                self._args["aws_session_token"] = os.environ["AWS_SESSION_TOKEN"]
        self._stack = contextlib.AsyncExitStack()
        self._client = None

    async def client(self):
        if self._client is None:
            self._client = await self._stack.enter_async_context(
                get_session().create_client("s3", **self._args))
        return self._client

    async def get(self, bucket, key):
        return (await self._get(bucket, key, None))[0]

    async def get_tagged(self, bucket, key):
        return await self._get(bucket, key, None)

    async def get_range(self, bucket, key, offset, length):
        if length <= 0:
            return b""
        return (await self._get(bucket, key, f"bytes={offset}-{offset + length - 1}"))[0]

    async def _get(self, bucket, key, byte_range):
        s3 = await self.client()
        args = {"Bucket": _strip(bucket), "Key": check_key(key)}
        if byte_range:
            args["Range"] = byte_range
        try:
            rsp = await s3.get_object(**args)
            async with rsp["Body"] as body:
                return await body.read(), rsp.get("ETag", "")
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                raise NotFound(f"key not found: {key}") from None
            if e.response.get("Error", {}).get("Code") == "InvalidRange":
                return b"", ""
            raise

    async def put(self, bucket, key, data):
        await self._put(bucket, key, data)

    async def put_if(self, bucket, key, data, tag):
        condition = {"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag}
        return await self._put(bucket, key, data, **condition)

    async def _put(self, bucket, key, data, **condition):
        s3 = await self.client()
        try:
            rsp = await s3.put_object(Bucket=_strip(bucket), Key=check_key(key),
                                      Body=bytes(data), **condition)
            return rsp.get("ETag", "")
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in _MISSING:
                raise NotFound(f"bucket not found: {bucket}") from None
            if condition and code in _RACE:
                raise PreconditionFailed(f"{key} changed since it was read") from None
            raise

    async def delete(self, bucket, key):
        s3 = await self.client()
        try:
            await s3.delete_object(Bucket=_strip(bucket), Key=check_key(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in _MISSING:
                raise

    async def exists(self, bucket, key):
        s3 = await self.client()
        try:
            await s3.head_object(Bucket=_strip(bucket), Key=check_key(key))
            return True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise

    async def _pages(self, bucket, prefix, delimiter):
        s3 = await self.client()
        args = {"Bucket": _strip(bucket), "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        try:
            async for page in s3.get_paginator("list_objects_v2").paginate(**args):
                yield page
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                raise NotFound(f"bucket not found: {bucket}") from None
            raise

    async def list_sizes(self, bucket, prefix):
        async for page in self._pages(bucket, prefix, None):
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    async def list_dirs(self, bucket, prefix):
        # S3 orders 'a-b/' before 'a/' (byte order of the whole prefix); sort by name
        # instead, as POSIX does, so the order agrees with name comparisons (Marker paging)
        dirs = [item["Prefix"] async for page in self._pages(bucket, prefix, "/")
                for item in page.get("CommonPrefixes", [])]
        for d in sorted(dirs, key=lambda d: d[:-1]):
            yield d

    async def close(self):
        await self._stack.aclose()
        self._client = None
