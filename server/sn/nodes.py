"""The SN's view of its data nodes: which node owns a name, and calls to it over HTTP.

Documents are routed by HSDS's rule (md5 of the id, or of 'bucket/path' for a
domain, over the DN list in id order), so every document has one writer.
"""
import asyncio
import json
import logging

import aiohttp

from ..core.errors import Unavailable, error_for
from ..core.ids import node_index
from ..offload.dn import DnExecutor

log = logging.getLogger("h5cloud.sn")


class DataNodes:
    def __init__(self, urls, timeout: float = 60.0):
        if not urls:
            raise ValueError("the SN needs at least one DN (DN_URLS)")
        self.urls = [u.rstrip("/") for u in urls]
        self.ids = [f"dn-{i + 1:03d}" for i in range(len(self.urls))]
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None
        self.ready = False

    async def start(self):
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self):
        if self.session:
            await self.session.close()

    def executor(self) -> DnExecutor:
        """What runs chunk tasks on these nodes."""
        return DnExecutor(self.session, self.urls)

    def url_for(self, route: str) -> str:
        return self.urls[node_index(route, len(self.urls))]

    async def _call(self, method, url, params=None, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session.request(method, url, params=params, data=data,
                                            headers=headers) as rsp:
                raw = await rsp.read()
                result = json.loads(raw) if raw else None
                if rsp.status >= 400:
                    message = result.get("error") if isinstance(result, dict) else rsp.reason
                    raise error_for(rsp.status, message or rsp.reason)
                return result
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
            log.warning("data node %s unreachable: %s", url, e)
            raise Unavailable("a data node is not reachable") from None

    # ---- documents -------------------------------------------------------

    async def get(self, bucket: str, key: str, route: str) -> dict:
        return await self._call("GET", self.url_for(route) + "/meta",
                                {"bucket": bucket, "key": key})

    async def put(self, bucket, key, doc, route, exclusive=False, sync=False):
        params = {"bucket": bucket, "key": key, "exclusive": int(exclusive), "sync": int(sync)}
        await self._call("PUT", self.url_for(route) + "/meta", params, doc)

    async def apply(self, bucket, key, route, op, args, sync=False):
        return await self._call("POST", self.url_for(route) + "/meta/op",
                                {"bucket": bucket, "key": key},
                                {"op": op, "args": args, "sync": sync})

    async def delete(self, bucket, key, route):
        await self._call("DELETE", self.url_for(route) + "/meta", {"bucket": bucket, "key": key})

    # ---- every node ------------------------------------------------------

    async def flush_all(self):
        await asyncio.gather(*(self._call("POST", u + "/flush") for u in self.urls))

    async def drop_all(self, bucket: str, prefix: str, purge_route: str):
        """Every DN forgets the prefix; then the purge route's DN deletes its keys."""
        params = {"bucket": bucket, "prefix": prefix}
        await asyncio.gather(*(self._call("POST", u + "/drop", params) for u in self.urls))
        await self._call("POST", self.url_for(purge_route) + "/drop", {**params, "purge": 1})

    async def check_health(self) -> bool:
        async def ping(url):
            try:
                async with self.session.get(url + "/health",
                                            timeout=aiohttp.ClientTimeout(total=2)) as rsp:
                    return rsp.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False
        results = await asyncio.gather(*(ping(u) for u in self.urls))
        self.ready = all(results)
        return self.ready
