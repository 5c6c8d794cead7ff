"""A chunk job: one dataset, its chunk dims, the fields asked for, and the tasks of one
request (core.selection) — what every executor (DNs, the SN itself, Lambda) runs."""
from dataclasses import dataclass, field
from functools import cached_property

from ..core import fastjson, ids, layout, types
from ..core.chunks import codec_for
from ..core.selection import ChunkTask


@dataclass
class Job:
    bucket: str
    dset: dict                      # the dataset document (type, shape, layout, filters, fill)
    chunk_dims: tuple
    fields: list | None = None
    refs: dict = field(default_factory=dict)   # chunk index -> [bucket, key, offset, size]
    _chunk_ids: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        self.type = self.dset["type"]
        self.partitions = layout.partition_count_of(self.dset)
        if self.fields:
            by_name = {f["name"]: f for f in self.type["fields"]}
            self.piece_type = {"class": "H5T_COMPOUND",
                               "fields": [by_name[f] for f in self.fields]}
        else:
            self.piece_type = self.type
        # looked up once: a compound type's lookup encodes it (tens of µs), and pieces
        # are decoded per chunk
        self.piece_info = types.type_info(self.piece_type)
        self.piece_dtype = self.piece_info.dtype
        # what an answer array is allocated with, over types.full_shape: numpy would
        # expand an array type's dims a second time from piece_dtype
        self.out_dtype = self.piece_info.elem_dtype
        self.item_size = self.piece_info.itemsize

    @cached_property
    def codec(self):
        """The dataset's ChunkCodec (codec_for encodes the document for its cache key)."""
        return codec_for(self.dset, self.chunk_dims)

    @property
    def chunk_bytes(self) -> int:
        """A whole chunk's bytes, decoded (variable-length items counted as 512)."""
        size = types.item_size(self.type)
        count = 512 if size == "H5T_VARIABLE" else size
        for n in self.chunk_dims:
            count *= n
        return count

    def chunk_id(self, task: ChunkTask) -> str:
        """The id of a task's chunk, made once per chunk of the job: placement, frame
        headers and the DNs' record each ask for it."""
        cid = self._chunk_ids.get(task.index)
        if cid is None:
            part = layout.partition_of(task.index, self.partitions) if self.partitions \
                else None
            cid = self._chunk_ids[task.index] = ids.chunk_id(self.dset["id"], task.index, part)
        return cid

    @cached_property
    def dset_json(self):
        """The dataset document as it goes into each framed request, encoded once: its
        fill value may be NaN, and its attributes are no executor's business."""
        return fastjson.embedded({k: v for k, v in self.dset.items() if k != "attributes"})

    def header(self, tasks, encoded=True) -> dict:
        """The JSON header of a framed request for these tasks (for frames.head); not
        encoded, with the dataset document as it is (a Request in this process)."""
        items = []
        for task in tasks:
            item = {"id": self.chunk_id(task), "task": task.to_json()}
            ref = self.refs.get(tuple(task.index))
            if ref:
                item["ref"] = ref
            items.append(item)
        return {"bucket": self.bucket, "dset": self.dset_json if encoded else self.dset,
                "chunk_dims": list(self.chunk_dims),
                "fields": self.fields, "tasks": items}

    def estimate(self, task: ChunkTask) -> int:
        size = 512 if self.item_size == "H5T_VARIABLE" else self.item_size
        count = 1
        for n in task.shape:
            count *= n
        return count * size
