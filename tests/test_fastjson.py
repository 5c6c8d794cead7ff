"""core.fastjson: orjson where it gives the standard library's meaning, the standard
library wherever it would not."""
import json
import math

import orjson

from server.core import fastjson


def test_exact_keeps_what_orjson_would_change():
    for value in ({"value": [float("nan"), 1.0]}, {"fill": float("inf")}, [float("-inf")],
                  {"big": 2**70}, {1: "an int key"}, {"fill": None}):
        out = fastjson.exact(value)
        assert out == json.dumps(value).encode(), value
    nan = json.loads(fastjson.exact({"v": float("nan")}))["v"]
    assert math.isnan(nan)


def test_exact_is_orjson_for_plain_documents():
    doc = {"id": "g-1", "links": {"é": {"class": "H5L_TYPE_HARD", "id": "g-2"}},
           "created": 1.7e9, "n": 2**63, "attributes": {}}
    assert fastjson.exact(doc) == orjson.dumps(doc)
    assert json.loads(fastjson.exact(doc)) == doc
