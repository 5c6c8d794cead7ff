"""Linked (_REF) layouts (STORAGE.md §7): where each chunk's bytes live in another
object. The SN works this out per task and sends it with the task, so data nodes
(and Lambda) just read byte ranges."""
import numpy as np

from ..core import chunks, layout, shapes, types
from ..core.errors import BadRequest
from ..offload.job import Job
from .objects import load_object
from .params import check_allowed_bucket

CONTIGUOUS, CHUNKED, INDIRECT = ("H5D_CONTIGUOUS_REF", "H5D_CHUNKED_REF",
                                 "H5D_CHUNKED_REF_INDIRECT")


def ref_class(doc: dict):
    lay = layout.layout_json_of(doc) or {}
    cls = lay.get("class")
    return cls if cls in (CONTIGUOUS, CHUNKED, INDIRECT) else None


def _piece(uri, offset, size, sel=None) -> list:
    bucket, key = chunks.split_uri(uri)
    return [bucket, key, int(offset), int(size), sel]


async def attach_refs(svc, target, domain_doc, job: Job, tasks) -> None:
    """job.refs[index] = list of pieces [bucket, key, offset, size, slices or None]."""
    cls = ref_class(job.dset)
    if cls is None:
        return
    lay = layout.layout_json_of(job.dset)
    dims = shapes.dims_of(job.dset["shape"])
    indices = sorted({tuple(t.index) for t in tasks})
    if cls == CONTIGUOUS:
        size = types.item_size(job.type)
        for index in indices:
            offset, length = chunks.contiguous_ref_range(lay, index, job.chunk_dims, dims, size)
            if length > 0:
                job.refs[index] = [_piece(lay["file_uri"], offset, length)]
    elif cls == CHUNKED:
        for index in indices:
            found = chunks.chunked_ref_range(lay, index)
            if found:
                job.refs[index] = [_piece(lay["file_uri"], *found)]
    else:
        await _indirect(svc, target, domain_doc, job, lay, indices)
    for pieces in job.refs.values():      # linked bytes obey allowed_buckets too
        for piece in pieces:
            check_allowed_bucket(piece[0], svc.settings)


async def _indirect(svc, target, domain_doc, job, lay, indices):
    """Chunk locations from the chunk-table dataset (one row per source chunk)."""
    from .values import read_points          # the same executor path as any point read
    table_doc = await load_object(svc, target, domain_doc, lay["chunk_table"], "d")
    table_dims = shapes.dims_of(table_doc["shape"])
    hyper = lay.get("hyper_dims")
    plan = {index: chunks.hyper_pieces(index, job.chunk_dims, hyper, table_dims)
            for index in indices}
    rows = sorted({t for pieces in plan.values() for t, _ in pieces})
    if not rows:
        return
    table_job = Job(target.bucket, table_doc, layout.chunk_dims_of(table_doc))
    points = np.array(rows, dtype=np.int64).reshape(len(rows), len(table_dims))
    entries = dict(zip(rows, await read_points(svc, table_job, points)))
    for index, pieces in plan.items():
        found = []
        for table_index, slices in pieces:
            uri, offset, size = chunks.indirect_entry(entries[table_index])
            uri = uri or lay.get("file_uri")
            if size <= 0:
                continue
            if not uri:
                raise BadRequest("chunk table entry without a file_uri")
            sel = None if hyper is None else [[s.start, s.stop] for s in slices]
            found.append(_piece(uri, offset, size, sel))
        if found:
            job.refs[index] = found
