"""The SN's view of its data nodes: which node owns a name, and calls to it over HTTP.

Documents are routed by HSDS's rule (md5 of the id, or of 'bucket/path' for a
domain, over the DN list in id order), so every document has one writer.

The list is DN_URLS, or found once at start from DN_SERVICE ("name:port", a DNS name
that resolves to every DN: a compose service scaled with --scale, a headless Service):
each address is named by its reverse look-up (the container's or pod's own name) and
the names are sorted, so the order, and with it ownership, is the same on every SN and
after restarts. A node that fails a call or a health check is marked down: requests
that need it get 503 at once until it answers again.
"""
import asyncio
import logging
import re
import socket

import aiohttp

from ..core import fastjson
from ..core.ids import node_index
from ..offload.dn import DnExecutor
from ..offload.wire import Wire

log = logging.getLogger("h5cloud.sn")
CONNECT_TIMEOUT = 3.0   # an absent node must not hold requests for the whole timeout
DNS_TTL = 5             # seconds; a node that comes back with a new address is found


class DataNodes:
    def __init__(self, urls, timeout: float = 60.0, service: str = "", count: int = 0):
        if not urls and not service:
            raise ValueError("the SN needs its DNs: DN_URLS or DN_SERVICE")
        self.urls = [u.rstrip("/") for u in urls]   # filled in place when discovered
        self.ids = [f"dn-{i + 1:03d}" for i in range(len(self.urls))]
        self.service, self.count = service, count
        self.down: set = set()      # urls that failed their last call or health check
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None
        self.wire: Wire | None = None
        self.ready = False          # every DN has answered once (then stays so)

    async def start(self):
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, ttl_dns_cache=DNS_TTL)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=CONNECT_TIMEOUT))
        self.wire = Wire(self.session, self.down, self.timeout)

    async def close(self):
        if self.wire:
            await self.wire.close()
        if self.session:
            await self.session.close()

    def executor(self, cache_bytes: int = 0) -> DnExecutor:
        """What runs chunk tasks on these nodes (cache_bytes: each one's chunk cache)."""
        return DnExecutor(self.wire, self.urls, cache_bytes)

    def url_for(self, route: str) -> str:
        return self.urls[node_index(route, len(self.urls))]

    async def discover(self) -> bool:
        """Fill urls from DN_SERVICE once at least `count` nodes resolve; True when set."""
        if self.urls:
            return True
        names = await resolve_all(self.service)
        if len(names) < max(self.count, 1):
            log.info("waiting for DNs at %s: %d of %d", self.service, len(names), self.count)
            return False
        port = self.service.rpartition(":")[2]
        self.urls.extend(f"http://{name}:{port}" for name in names)
        self.ids.extend(f"dn-{i + 1:03d}" for i in range(len(names)))
        log.info("DNs at %s: %s", self.service, ", ".join(self.urls))
        return True

    async def _call(self, method, node, path, params=None, body=None):
        """method on node's path (node: one of urls): its JSON answer."""
        data = b"" if body is None else fastjson.exact(body)
        raw = await self.wire.call(node, method, path, params, data)
        return fastjson.loads(bytes(raw)) if len(raw) else None

    # ---- documents -------------------------------------------------------

    async def get(self, bucket: str, key: str, route: str) -> dict:
        return await self._call("GET", self.url_for(route), "/meta",
                                {"bucket": bucket, "key": key})

    async def put(self, bucket, key, doc, route, exclusive=False, sync=False):
        params = {"bucket": bucket, "key": key, "exclusive": int(exclusive), "sync": int(sync)}
        await self._call("PUT", self.url_for(route), "/meta", params, doc)

    async def apply(self, bucket, key, route, op, args, sync=False):
        return await self._call("POST", self.url_for(route), "/meta/op",
                                {"bucket": bucket, "key": key},
                                {"op": op, "args": args, "sync": sync})

    async def delete(self, bucket, key, route):
        await self._call("DELETE", self.url_for(route), "/meta", {"bucket": bucket, "key": key})

    # ---- every node ------------------------------------------------------

    async def flush_all(self):
        await asyncio.gather(*(self._call("POST", u, "/flush") for u in self.urls))

    async def drop_all(self, bucket: str, prefix: str, purge_route: str):
        """Every DN forgets the prefix; then the purge route's DN deletes its keys."""
        params = {"bucket": bucket, "prefix": prefix}
        await asyncio.gather(*(self._call("POST", u, "/drop", params) for u in self.urls))
        await self._call("POST", self.url_for(purge_route), "/drop", {**params, "purge": 1})

    async def check_health(self) -> bool:
        """Ask every DN; True when all answer. Sets ready once they all have."""
        if not await self.discover():
            return False

        async def ping(url):
            try:
                async with self.session.get(url + "/health",
                                            timeout=aiohttp.ClientTimeout(total=2)) as rsp:
                    return rsp.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return False
        results = await asyncio.gather(*(ping(u) for u in self.urls))
        for url, ok in zip(self.urls, results):
            if ok and url in self.down:
                log.info("data node %s answers again", url)
            (self.down.discard if ok else self.down.add)(url)
        self.ready = self.ready or all(results)
        return all(results)


async def resolve_all(service: str) -> list:
    """The names of every address of "host:port", sorted naturally (dn_2 before dn_10);
    an address without a reverse name stands for itself."""
    host, _, port = service.rpartition(":")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (socket.gaierror, ValueError):
        return []
    addresses = sorted({info[4][0] for info in infos})

    async def name_of(address):
        try:
            name = (await loop.run_in_executor(None, socket.gethostbyaddr, address))[0]
        except OSError:
            return address
        return name if name and name != address else address
    names = await asyncio.gather(*(name_of(a) for a in addresses))
    return sorted(set(names), key=lambda n: [int(p) if p.isdigit() else p
                                             for p in re.split(r"(\d+)", n)])
