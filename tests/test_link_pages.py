"""Pages of a group's links, cut on the DN (core.metaops.list_links): the order is kept
beside the document and must follow every change of its links."""
import copy

import pytest

from server.core import metaops
from server.core.errors import NotFound


def group(titles):
    return {"id": "g-x", "links": {t: {"class": "H5L_TYPE_SOFT", "h5path": "/" + t,
                                        "created": 100.0 + i} for i, t in enumerate(titles)}}


def page(doc, memo, **args):
    changed, result = metaops.apply("list_links", doc, args, memo)
    assert not changed
    return [link["title"] for link in result["links"]]


def test_pages_by_title_and_by_creation():
    doc, memo = group(["m", "b", "z", "a"]), {}
    assert page(doc, memo) == ["a", "b", "m", "z"]
    assert page(doc, memo, limit=2) == ["a", "b"]
    assert page(doc, memo, marker="b", limit=2) == ["m", "z"]
    assert page(doc, memo, marker="z") == []
    assert page(doc, memo, create_order=True) == ["m", "b", "z", "a"]
    assert page(doc, memo, create_order=True, marker="b", limit=1) == ["z"]
    with pytest.raises(NotFound):
        page(doc, memo, marker="c")
    with pytest.raises(NotFound):
        page(doc, memo, marker="c", create_order=True)


def test_pattern_then_marker_then_limit():
    doc, memo = group(["x1", "y1", "x2", "x3", "y2"]), {}
    assert page(doc, memo, pattern="x*") == ["x1", "x2", "x3"]
    assert page(doc, memo, pattern="x*", marker="x1", limit=1) == ["x2"]
    with pytest.raises(NotFound):          # the marker must be one the pattern lists
        page(doc, memo, pattern="x*", marker="y1")


def test_order_follows_added_and_deleted_links():
    doc, memo = group(["b", "d"]), {}
    assert page(doc, memo) == ["b", "d"]
    metaops.apply("add_links", doc, {"links": {"c": {"class": "H5L_TYPE_SOFT",
                                                      "h5path": "/c"}}}, memo)
    assert page(doc, memo) == ["b", "c", "d"]
    assert page(doc, memo, create_order=True) == ["b", "d", "c"]
    metaops.apply("delete_links", doc, {"titles": ["b"]}, memo)
    assert page(doc, memo) == ["c", "d"]
    assert page(doc, memo, create_order=True) == ["d", "c"]
    with pytest.raises(NotFound):
        page(doc, memo, marker="b")


def test_a_replaced_or_restored_document_is_not_listed_from_a_stale_order():
    doc, memo = group(["a", "b"]), {}
    assert page(doc, memo) == ["a", "b"]
    before = copy.deepcopy((doc, memo))      # what a DN keeps to undo a failed sync op
    doc["links"] = group(["q"])["links"]     # a whole new document (PUT of the object)
    assert page(doc, memo) == ["q"]
    doc, memo = before
    assert page(doc, memo) == ["a", "b"]
