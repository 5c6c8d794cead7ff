"""server.core.query: the §11.6 query grammar, parsed (never eval'd) and evaluated
with numpy on structured arrays; query-update bodies."""
import time

import numpy as np
import pytest

from server.core.errors import BadRequest
from server.core.query import parse_query, parse_update, tokenize

STOCKS = np.dtype([("stock_symbol", "S4"), ("date", "S8"), ("open", "<i4"),
                   ("close", "<i4")])
ROWS = [(b"EBAY", b"20170102", 3023, 3210), (b"AAPL", b"20170102", 3054, 2933),
        (b"AMZN", b"20170102", 2973, 3011), (b"EBAY", b"20170103", 3042, 3128),
        (b"AAPL", b"20170103", 3182, 3034), (b"AMZN", b"20170103", 3021, 2788),
        (b"EBAY", b"20170104", 2798, 2876), (b"AAPL", b"20170104", 2834, 2867),
        (b"AMZN", b"20170104", 0, 2749)]


@pytest.fixture
def stocks():
    return np.array(ROWS, dtype=STOCKS)


def hits(text, arr, dtype=STOCKS):
    return np.flatnonzero(parse_query(text, dtype).mask(arr)).tolist()


# ---- the grammar examples of §11.6 ----------------------------------------------------

def test_bytes_equality(stocks):
    assert hits("stock_symbol == b'AAPL'", stocks) == [1, 4, 7]
    assert hits('stock_symbol == b"AAPL"', stocks) == [1, 4, 7]
    assert hits("b'AAPL' == stock_symbol", stocks) == [1, 4, 7]
    assert hits("stock_symbol != b'AAPL'", stocks) == [0, 2, 3, 5, 6, 8]


def test_and_of_parenthesised_ranges(stocks):
    assert hits("(open > 3000) & (open < 3100)", stocks) == [0, 1, 3, 5]
    assert hits("(open > 3000) | (close < 2800)", stocks) == [0, 1, 3, 4, 5, 8]
    assert hits("((open > 3000) & (open < 3100)) | (open == 0)", stocks) == [0, 1, 3, 5, 8]
    assert hits("open > 3000 & open < 3100", stocks) == [0, 1, 3, 5]
    assert hits("3000 < open", stocks) == hits("open > 3000", stocks)


def test_where_in(stocks):
    q = parse_query("open < 3000 where stock_symbol in (b'AAPL', b'EBAY')", STOCKS)
    assert q.has_where_in and q.where_field == "stock_symbol"
    assert q.where_values == (b"AAPL", b"EBAY")
    assert np.flatnonzero(q.mask(stocks)).tolist() == [6, 7]
    assert hits("where stock_symbol in (b'AAPL')", stocks) == [1, 4, 7]
    assert hits("where stock_symbol in (b'AAPL',)", stocks) == [1, 4, 7]
    assert hits("where open in (0, 3023, 99)", stocks) == [0, 8]
    assert hits("where stock_symbol in ('AAPL')", stocks) == []      # str never matches
    assert not parse_query("open == 0", STOCKS).has_where_in


def test_open_equals_zero(stocks):
    assert hits("open == 0", stocks) == [8]
    assert hits("open == 0.0", stocks) == [8]
    assert hits("open > -1", stocks) == list(range(9))
    assert hits("open >= 3.05e3", stocks) == [1, 4]


def test_plain_string_never_matches_bytes(stocks):
    assert hits("stock_symbol == 'AAPL'", stocks) == []
    assert hits("stock_symbol != 'AAPL'", stocks) == list(range(9))
    with pytest.raises(BadRequest):
        parse_query("stock_symbol < 'AAPL'", STOCKS)


def test_field_against_field(stocks):
    assert hits("open > close", stocks) == [i for i, r in enumerate(ROWS) if r[2] > r[3]]
    assert hits("date == date", stocks) == list(range(9))
    with pytest.raises(BadRequest):
        parse_query("open == date", STOCKS)


def test_fields_used_and_repr():
    q = parse_query("(close > 1) & (open < 5) where stock_symbol in (b'X')", STOCKS)
    assert q.fields_used == ("stock_symbol", "open", "close")
    assert "close" in repr(q)


# ---- every 400 case ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "gloop < blag",                   # unknown names
    "foobar",                         # missing operator
    "open = 3000",                    # '=' is not a comparison
    "open == 3000;",                  # ';'
    "open == 3000; import os",
    "@open == 1",                     # '@'
    "open @ 1",
    "(open > 3000",                   # unbalanced parentheses
    "open > 3000)",
    "((open > 3000) & (open < 3100)",
    "stock_symbol == b'AAPL",         # unbalanced quotes
    "stock_symbol == 'AAPL",
    'stock_symbol == b"AAPL\'',
    "open >",                         # trailing operators
    "open > 3000 &",
    "open > 3000 |",
    "open > 3000 & & open < 3",
    "import",                         # identifiers that are not fields
    "import os",
    "__import__('os').system('ls')",
    "open.real > 3",
    "open > 3 and close < 4",
    "not open",
    "stock_symbol > 3",               # string field vs number
    "open == b'3000'",                # numeric field vs bytes
    "open == '3000'",
    "1 < 2",                          # no field
    "open < close < 3",               # chained comparison
    "",                               # empty
    "   ",
    "where",
    "where stock_symbol",
    "where stock_symbol in",
    "where stock_symbol in ()",
    "where stock_symbol in (b'A'",
    "where gloop in (1)",
    "open < 3 where",
    "open < 3 where stock_symbol in (b'A') extra",
    "open < 3 where stock_symbol in (open)",
    "open in (1, 2)",
    "open ~ 3",
    "open == 3e",
    "open == 12abc",
    "open == 1.2.3",
    "open == --3",
    "open == 0x10",
    "stock_symbol == b'\\q'",         # unsupported escape
    "open == 3 ** 2",
    "open[0] == 3",
    "lambda: 1",
])
def test_bad_queries_are_400(text):
    with pytest.raises(BadRequest):
        parse_query(text, STOCKS)


def test_error_messages_say_why():
    with pytest.raises(BadRequest, match="unknown name 'gloop'"):
        parse_query("gloop < blag", STOCKS)
    with pytest.raises(BadRequest, match="unterminated"):
        parse_query("stock_symbol == b'AAPL", STOCKS)
    with pytest.raises(BadRequest, match="'='"):
        parse_query("open = 1", STOCKS)
    with pytest.raises(BadRequest, match="unknown name 'x'"):   # elements are `_`
        parse_query("x > 1", np.dtype("<i4"))
    with pytest.raises(BadRequest, match="compound dataset or one of numbers"):
        parse_query("_ > 1", np.dtype(("<i4", (2,))))
    values = np.arange(12, dtype="<i4").reshape(3, 4)
    assert np.array_equal(parse_query("_ > 2 AND _ < 5 OR _ == 11", "<i4").mask(values),
                          ((values > 2) & (values < 5)) | (values == 11))
    with pytest.raises(BadRequest):
        parse_query(None, STOCKS)
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_query("(" * 500 + "open > 1" + ")" * 500, STOCKS)


def test_tokenizer_literals():
    toks = tokenize("b'a\\x00\\'b' 'c\\td' -1.5e3 .5 7")
    assert [(t.kind, t.value) for t in toks[:-1]] == [
        ("bytes", b"a\x00'b"), ("str", "c\td"), ("sign", "-"), ("num", 1500.0),
        ("num", 0.5), ("num", 7)]


# ---- other field kinds --------------------------------------------------------------------

def test_index_field_is_an_ordinary_field():
    dt = np.dtype([("index", "<i8"), ("value", "<f4")])
    arr = np.zeros(5, dt)
    arr["index"] = [10, 20, 30, 40, 50]
    arr["value"] = [0.5, 1.5, 2.5, 3.5, 4.5]
    assert hits("index >= 30", arr, dt) == [2, 3, 4]
    assert hits("(index > 10) & (value < 3)", arr, dt) == [1, 2]
    assert hits("where index in (20, 50)", arr, dt) == [1, 4]


def test_float_and_unsigned_fields():
    dt = np.dtype([("x", ">f8"), ("u", "<u2"), ("flag", "?")])
    arr = np.zeros(4, dt)
    arr["x"] = [np.nan, -1.5, 0.0, 2.0]
    arr["u"] = [0, 1, 65535, 7]
    arr["flag"] = [True, False, True, False]
    assert hits("x < 0", arr, dt) == [1]
    assert hits("x != 0", arr, dt) == [0, 1, 3]
    assert hits("u > -1", arr, dt) == [0, 1, 2, 3]
    assert hits("u == 65535", arr, dt) == [2]
    assert hits("u < 100000000000000000000", arr, dt) == [0, 1, 2, 3]
    assert hits("flag == 1", arr, dt) == [0, 2]


def test_vlen_string_fields():
    dt = np.dtype([("name", np.dtype("O", metadata={"vlen": str})), ("n", "<i4")])
    arr = np.zeros(4, dt)
    arr["name"] = ["alpha", "beta", 0, "été"]
    assert hits("name == 'beta'", arr, dt) == [1]
    assert hits("name == b'beta'", arr, dt) == [1]
    assert hits("name == ''", arr, dt) == [2]            # unwritten = empty
    assert hits("name > 'b'", arr, dt) == [1, 3]
    assert hits("where name in ('alpha', 'été')", arr, dt) == [0, 3]
    with pytest.raises(BadRequest):
        parse_query("name == 3", dt)


def test_uncomparable_fields_are_400():
    dt = np.dtype([("a", "<i4", (3,)), ("c", [("x", "<i4")]), ("v", "V4"), ("n", "<i4")])
    for text in ("a == 1", "c == 1", "v == b'x'", "a == n"):
        with pytest.raises(BadRequest):
            parse_query(text, dt)


def test_mask_checks_the_array():
    q = parse_query("open > 1", STOCKS)
    with pytest.raises(BadRequest):
        q.mask(np.zeros(3, "<i4"))
    with pytest.raises(BadRequest):
        q.mask(np.zeros(3, [("close", "<i4")]))
    assert q.mask(np.zeros(0, STOCKS)).shape == (0,)


def test_million_rows_vectorised():
    n = 1_000_000
    rng = np.random.default_rng(0)
    arr = np.zeros(n, STOCKS)
    arr["stock_symbol"] = np.array([b"AAPL", b"EBAY", b"AMZN", b"GOOG"])[rng.integers(0, 4, n)]
    arr["open"] = rng.integers(2500, 3500, n)
    arr["close"] = rng.integers(2500, 3500, n)
    q = parse_query("((open > 3000) & (open < 3100) | (close == 2999)) "
                    "where stock_symbol in (b'AAPL', b'EBAY')", STOCKS)
    t = time.perf_counter()
    m = q.mask(arr)
    elapsed = time.perf_counter() - t
    want = ((((arr["open"] > 3000) & (arr["open"] < 3100)) | (arr["close"] == 2999))
            & np.isin(arr["stock_symbol"], [b"AAPL", b"EBAY"]))
    assert np.array_equal(m, want)
    t = time.perf_counter()
    parse_query("stock_symbol == b'AAPL'", STOCKS).mask(arr)
    elapsed2 = time.perf_counter() - t
    print(f"\n1M-row mask: compound query {elapsed * 1e3:.1f} ms, "
          f"bytes equality {elapsed2 * 1e3:.1f} ms")


# ---- query update ---------------------------------------------------------------------------

def test_parse_update():
    out = parse_update({"open": 999}, STOCKS)
    assert out == {"open": 999} and out["open"].dtype == np.dtype("<i4")
    out = parse_update({"stock_symbol": "ZZZZZZ", "close": 5.0, "extra": 1}, STOCKS)
    assert out["stock_symbol"] == b"ZZZZ" and out["close"] == 5 and "extra" not in out
    arr = np.array(ROWS, dtype=STOCKS)
    q = parse_query("stock_symbol == b'AAPL'", STOCKS)
    hit = np.flatnonzero(q.mask(arr))
    for name, value in parse_update({"open": 999}, STOCKS).items():
        arr[name][hit] = value
    assert arr["open"][hit].tolist() == [999, 999, 999]


@pytest.mark.parametrize("body", [
    {}, {"nope": 1}, [["open", 1]], "open=1", None,
    {"open": "abc"}, {"open": 1.5}, {"open": 2 ** 40}, {"open": True}, {"open": None},
    {"stock_symbol": 12}, {"open": [1, 2]},
])
def test_parse_update_400(body):
    with pytest.raises(BadRequest):
        parse_update(body, STOCKS)


def test_parse_update_other_kinds():
    dt = np.dtype([("x", "<f4"), ("flag", "?"), ("name", np.dtype("O", metadata={"vlen": str})),
                   ("a", "<i2", (2,))])
    out = parse_update({"x": "nan", "flag": True, "name": "hé", "a": [1, 2]}, dt)
    assert np.isnan(out["x"]) and out["flag"] is np.True_ and out["name"] == "hé"
    assert out["a"].tolist() == [1, 2]
    with pytest.raises(BadRequest):
        parse_update({"a": [1, 2, 3]}, dt)
    with pytest.raises(BadRequest):
        parse_update({"flag": 2}, dt)


# ---- domain queries (GET /domains?query=) -------------------------------------

def test_domain_query_grammar():
    from server.core.domain_query import parse_domain_query

    def attrs(**values):
        return {k: {"type": "x", "shape": {"class": "H5S_SCALAR"}, "value": v}
                for k, v in values.items()}

    q = parse_domain_query("a > 7 AND b != 'A4' or (c == -1.5)")
    assert q.matches(attrs(a=8, b="A3")) and q.matches(attrs(c=-1.5))
    assert not q.matches(attrs(a=8, b="A4")) and not q.matches({})
    # kinds must agree; lists of one count; other values never match
    assert not parse_domain_query("a == '8'").matches(attrs(a=8))
    assert parse_domain_query("a == 8").matches(attrs(a=[8]))
    assert not parse_domain_query("a == 8").matches(attrs(a=[8, 9]))
    assert not parse_domain_query("a != 1").matches(attrs(a=True))
    assert parse_domain_query("'m' < name").matches(attrs(name="z"))
    for bad in ("", "a", "a >", "a = 1", "1 == 1", "(a > 1", "a > 1 b", "a > 1 AND"):
        with pytest.raises(BadRequest):
            parse_domain_query(bad)
