"""Which executor runs a request's chunk tasks.

Writes always go to the owning DNs (the one writer of each chunk). Reads go to the
DNs unless the dataset is clean — no DN holds a chunk of it that storage has not got
yet — and then to a cheaper executor: the SN reading storage itself, or Lambda. A
dataset is marked dirty by every write through here and becomes clean again when a
flush completes or the DNs report nothing dirty under it. Other SNs write too, so a
dataset clean here is confirmed with the DNs (one small request) before a read passes
them by: a write acknowledged by any SN is seen by every later read.
"""
import asyncio
import contextlib
import logging
import time

from ..core.selection import chunk_tasks
from .direct import DirectExecutor, sparse
from .dn import DnExecutor
from .serverless import Decision, offload_query, plan_read
from .job import Job

log = logging.getLogger("h5cloud.offload")
CACHED = 1 / 2      # the SN reads what the DNs must inflate or load while they hold less


class Dispatcher:
    def __init__(self, dn: DnExecutor, direct: DirectExecutor | None, settle_after: float,
                 serverless=None):
        self.dn = dn
        self.direct = direct
        self.serverless = serverless       # a LambdaExecutor when chunk_read is configured
        self.settle_after = settle_after
        self.generation = 0
        self.marks: dict = {}          # dataset id -> (generation, time of last write)
        self.writing: dict = {}        # dataset id -> writes in flight

    # ---- dirtiness ----------------------------------------------------------

    def _mark(self, dset_id: str):
        self.generation += 1
        self.marks[dset_id] = (self.generation, time.monotonic())

    def is_clean(self, dset_id: str) -> bool:
        """Clean as far as writes through this SN go."""
        return dset_id not in self.marks and not self.writing.get(dset_id)

    async def clean(self, dset_id: str) -> bool:
        """Clean for every SN: none of the DNs holds a chunk of it dirty."""
        if not self.is_clean(dset_id):
            return False
        try:
            still = await self.dn.dirty([dset_id])
        except Exception as e:            # a DN is away: its chunks may be dirty
            log.debug("dirty check failed: %s", e)
            return False
        if still:
            self._mark(dset_id)           # written through another SN; settle clears it
            return False
        return True

    def flushed(self, since_generation: int):
        """Every DN has written everything it held when since_generation was current."""
        for dset_id, (gen, _) in list(self.marks.items()):
            if gen <= since_generation and not self.writing.get(dset_id):
                del self.marks[dset_id]

    async def settle(self):
        """Clear marks of datasets the DNs no longer hold dirty (run periodically)."""
        due = [d for d, (_, t) in self.marks.items()
               if time.monotonic() - t >= self.settle_after and not self.writing.get(d)]
        if not due:
            return
        gen = self.generation
        try:
            still = await self.dn.dirty(due)
        except Exception as e:            # a DN is away: keep the marks
            log.debug("settle skipped: %s", e)
            return
        for dset_id in due:
            mark = self.marks.get(dset_id)
            if dset_id not in still and mark and mark[0] <= gen and not self.writing.get(dset_id):
                del self.marks[dset_id]

    # ---- running tasks --------------------------------------------------------

    def may_read_directly(self, job: Job, tasks) -> bool:
        """Would the SN read these tasks itself, if no DN holds the dataset dirty? The
        DNs answer from decoded chunks in memory; the SN keeps none. So the SN reads
        - an uncompressed dataset when the tasks use much of each chunk (the rows
          they touch are one byte range each);
        - a compressed one, likewise, only when the DNs likely hold few of its chunks
          decoded (they would inflate them too; the SN saves the hop and its copy);
        - a few elements of each chunk (a column, scattered points) only from plain
          chunks it can map (POSIX) that the DNs likely do not hold, and more of them
          than half their caches hold: the pages touched, where the DNs would read
          every whole chunk and evict the others from their caches for them. (Fewer
          go to the DNs, whose caches then serve the next such read.)
        Measured: README."""
        if self.direct is None or not tasks or not self.is_clean(job.dset["id"]):
            return False
        if sparse(job, tasks):
            return self.direct.maps_plain(job) and \
                self.dn.cached_share(job, tasks) < CACHED and \
                len(tasks) * job.chunk_bytes > self.dn.capacity * CACHED
        return not job.codec.compressed or self.dn.cached_share(job, tasks) < CACHED

    def whole_chunk_pages(self, job: Job, sel) -> bool:
        """Should the pages of a streamed read of sel hold whole chunk rows? Yes where the
        SN would inflate the chunks itself: it keeps none, so a chunk cut by a page
        would be inflated once per page."""
        if self.direct is None or not self.is_clean(job.dset["id"]) or \
                not job.codec.compressed:
            return False
        return self.may_read_directly(job, chunk_tasks(sel, job.chunk_dims))

    async def reader(self, job: Job, tasks):
        if self.may_read_directly(job, tasks) and await self.clean(job.dset["id"]):
            return self.direct
        return self.dn

    async def may_offload(self, job: Job) -> bool:
        """Could Lambda read this dataset now (configured, not switched off, and no DN
        holds it dirty)?"""
        return self.serverless is not None and \
            self.serverless.settings.aws_lambda_offload != "never" and \
            await self.clean(job.dset["id"])

    async def start_read(self, job: Job, tasks) -> Decision | None:
        """Where a request's chunk tasks (all its pages) are read, decided once; None
        when Lambda is not an option (then the SN itself or the DNs)."""
        if not tasks or not await self.may_offload(job):
            return None
        return plan_read(self.serverless, job, tasks, len(self.dn.urls))

    async def read(self, job: Job, tasks, out, decision: Decision | None = None) -> str:
        """Fill out for these tasks; decision: the request's when it reads in pages."""
        single = decision is None
        if single:
            decision = await self.start_read(job, tasks)
        offload = decision.offload if decision else None
        if offload is not None and await offload.read(tasks, out):
            if single:
                offload.finish()
            return "lambda"
        executor = self.dn if decision is not None else await self.reader(job, tasks)
        await executor.read(job, tasks, out)
        if executor is self.dn and decision is not None and decision.offload is None:
            decision.dn_read(tasks)     # timed for the model once the last page is in
        return executor.name

    @contextlib.contextmanager
    def _changing(self, dset_id: str):
        """Around a write: dirty from before it starts until the DNs report it stored."""
        self.writing[dset_id] = self.writing.get(dset_id, 0) + 1
        self._mark(dset_id)
        try:
            yield
        finally:
            self._mark(dset_id)
            self.writing[dset_id] -= 1
            if not self.writing[dset_id]:
                del self.writing[dset_id]

    async def write(self, job: Job, tasks, src):
        with self._changing(job.dset["id"]):
            await self.dn.write(job, tasks, src)

    async def query(self, job: Job, tasks, text, limit=None, update=None, positions=True):
        if update is not None:
            with self._changing(job.dset["id"]):
                return await self.dn.query(job, tasks, text, limit, update)
        if await self.may_offload(job):
            found = await offload_query(self.serverless, job, tasks, text, len(self.dn.urls))
            if found is not None:
                return found
        # otherwise the DNs: their caches hold the rows decoded, and the masks run in
        # several processes at once (measured faster than the SN alone)
        return await self.dn.query(job, tasks, text, limit, positions=positions)

    async def settle_loop(self, interval: float):
        while True:
            await asyncio.sleep(interval)
            try:
                await self.settle()
            except Exception:
                log.exception("settle pass failed")
