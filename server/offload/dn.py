"""The default executor: chunk tasks go to the DN that owns each chunk, batched per DN
into framed requests (JSON header + raw bytes) that run concurrently."""
import asyncio

import numpy as np

from ..core import fastjson, frames, values
from ..core.frames import BATCH_BYTES, MESSAGE_BYTES
from ..core.ids import dataset_prefix, node_index
from .cost import RecentChunks
from .job import Job
from .wire import Wire


class DnExecutor:
    name = "dn"

    def __init__(self, wire: Wire, urls: list, cache_bytes: int = 0):
        self.wire = wire
        self.urls = urls                # shared with the SN's DataNodes (filled at start)
        self.in_flight = 0              # chunks being read now, all requests (cost model)
        self.cache_bytes = cache_bytes  # each DN's chunk cache
        # chunks the DNs read or wrote lately: what their caches likely hold decoded
        self.recent = RecentChunks(cache_bytes)

    @property
    def capacity(self) -> int:
        """Bytes of decoded chunks all the DNs' caches hold together."""
        return self.cache_bytes * max(1, len(self.urls))

    def _seen(self, job: Job, tasks):
        self.recent.capacity = self.capacity
        self.recent.add((job.chunk_id(t) for t in tasks), job.chunk_bytes)

    def cached_share(self, job: Job, tasks) -> float:
        """The share of these tasks' chunks the DNs likely hold decoded."""
        return self.recent.count(job.chunk_id(t) for t in tasks) / max(1, len(tasks))

    def _batches(self, job: Job, tasks) -> list:
        """(url, tasks) per owning DN, each batch at most BATCH_BYTES of elements."""
        by_node: dict = {}
        for task in tasks:
            url = self.urls[node_index(job.chunk_id(task), len(self.urls))]
            by_node.setdefault(url, []).append(task)
        batches = []
        for url, group in by_node.items():
            current, size = [], 0
            for task in group:
                est = job.estimate(task)
                if current and size + est > BATCH_BYTES:
                    batches.append((url, current))
                    current, size = [], 0
                current.append(task)
                size += est
            batches.append((url, current))
        return batches

    async def _post(self, node: str, path: str, body, big_answer=False):
        return await self.wire.call(node, "POST", path, body=body, big_answer=big_answer)

    async def dirty(self, dset_ids) -> set:
        """The datasets of which some DN still holds chunks not yet in storage."""
        prefixes = {dataset_prefix(d): d for d in dset_ids}
        body = fastjson.dumps({"prefixes": list(prefixes)})
        answers = await asyncio.gather(*(self._post(u, "/chunks/dirty", body) for u in self.urls))
        return {prefixes[p] for raw in answers for p in fastjson.loads(bytes(raw))["dirty"]}

    async def read(self, job: Job, tasks, out: np.ndarray):
        """Fill out[task.out_sel] for every task."""
        async def one(url, group):
            big = sum(job.estimate(task) for task in group) > MESSAGE_BYTES
            raw = await self._post(url, "/chunks/read", frames.pack(job.header(group)), big)
            header, payload = frames.unpack(raw)
            for task, piece in zip(group, frames.split(payload, header["sizes"])):
                out[task.out_sel] = values.from_bytes(piece, job.piece_info, task.shape,
                                                    internal=True)

        self.in_flight += len(tasks)
        try:
            await asyncio.gather(*(one(url, group) for url, group in self._batches(job, tasks)))
        finally:
            self.in_flight -= len(tasks)
        self._seen(job, tasks)

    async def write(self, job: Job, tasks, src: np.ndarray):
        """Write src[task.out_sel] into every task's chunk."""
        async def one(url, group):
            pieces = [values.as_buffer(src[task.out_sel], job.piece_type) for task in group]
            header = job.header(group)
            header["sizes"] = [len(p) for p in pieces]
            await self._post(url, "/chunks/write", [frames.head(header), *pieces])

        await asyncio.gather(*(one(url, group) for url, group in self._batches(job, tasks)))
        self._seen(job, tasks)

    async def query(self, job: Job, tasks, text: str, limit=None, update=None,
                    positions=True) -> list:
        """[(task, positions within its piece, rows array)] for tasks with matches, in task
        order (positions None when not wanted). With a limit (or an update) the tasks run
        in order so the first matches win."""
        async def one(url, group, lim):
            header = job.header(group)
            header.update(query=text, limit=lim, positions=positions,
                          update=None if update is None else fastjson.embedded(update))
            raw = await self._post(url, "/chunks/query", frames.pack(header))
            head, payload = frames.unpack(raw)
            return decode_found(job, group, head["counts"], frames.split(payload, head["sizes"]))

        if limit is None and update is None:
            results = await asyncio.gather(*(one(url, g, None)
                                             for url, g in self._batches(job, tasks)))
            found = [item for batch in results for item in batch]
            order = {id(t): i for i, t in enumerate(tasks)}
            return sorted(found, key=lambda item: order[id(item[0])])
        found, remaining = [], limit
        for task in tasks:
            url = self.urls[node_index(job.chunk_id(task), len(self.urls))]
            items = await one(url, [task], remaining)
            found += items
            if remaining is not None:
                remaining -= sum(len(rows) for _, _, rows in items)
                if remaining <= 0:
                    break
        return found


def decode_found(job: Job, tasks, counts: list, parts: list) -> list:
    """[(task, positions, rows)] from a DN's query answer: per task run, the matching
    positions (uint64; None when they were not asked for) and rows, in task order."""
    found = []
    for i, count in enumerate(counts):
        positions = np.frombuffer(parts[2 * i], "<u8").astype(np.int64) \
            if len(parts[2 * i]) or not count else None
        rows = values.from_bytes(parts[2 * i + 1], job.piece_info, (count,), internal=True)
        found.append((tasks[i], positions, rows))
    return found
