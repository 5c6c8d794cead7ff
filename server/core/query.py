"""Dataset queries (REST_API.md §11.6): parsed by a hand-written tokenizer and
recursive-descent parser, evaluated with numpy -- never ``eval``'d.

Grammar::

    query    := expr [ "where" field "in" "(" literal { "," literal } ")" ]
              | "where" field "in" "(" literal { "," literal } ")"
    expr     := term { "|" term }
    term     := factor { "&" factor }
    factor   := "(" expr ")" | operand cmp operand
    cmp      := "<" | "<=" | ">" | ">=" | "==" | "!="
    operand  := field | ["-"|"+"] number | b'...' | b"..." | '...' | "..."

Semantics and decisions:

* fields are the compound type's top-level field names (an ``index`` field is an
  ordinary field); ``where`` and ``in`` are keywords.  Every other identifier
  (``gloop``, ``import``, ``and``, ``not``) is an unknown name -> 400.
* a comparison needs at least one field; ``field cmp field`` needs two fields
  of the same kind.  ``a > 1 & a < 5`` is accepted (each comparison is a factor;
  Python precedence would have made it an error in HSDS).
* numeric fields (integer, float, boolean, enum) compare with numbers;
  fixed-length string fields hold bytes and compare with ``b'...'`` literals
  (numpy ``S`` semantics: trailing NULs do not count).  A plain ``'...'`` string
  never matches a bytes field: ``==`` is false for every row, ``!=`` true, and
  ``<``-style comparisons are a 400 (as Python's bytes vs str).  A number
  against a string field, or a string against a numeric field -> 400.
* variable-length string fields compare elementwise with strings (UTF-8 fields
  also accept b'...' literals, decoded as UTF-8); unwritten elements count as
  empty strings.
* fields of other kinds (arrays, nested compounds, opaque, vlen sequences,
  references) cannot be compared -> 400.
* ``where f in (a, b, ...)`` keeps rows whose field f equals one of the literals
  (same typing rules as ``==``) and is intersected with the expression.
* escapes in string literals: ``\\\\ \\' \\" \\n \\r \\t \\0 \\xHH``; others -> 400.
"""
import re
from dataclasses import dataclass

import numpy as np

from server.core.errors import BadRequest

CMP_OPS = ("<", "<=", ">", ">=", "==", "!=")
_ORDERING = ("<", "<=", ">", ">=")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NUMPY_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater,
              ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal}
_PY_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
           ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
           "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
KEYWORDS = ("where", "in")
VALUE_FIELD = "_"          # a non-compound dataset's elements, in a query
MAX_QUERY_LENGTH = 64 * 1024
MAX_DEPTH = 100

_NUMBER_RE = re.compile(r"(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "0": "\0"}


# ---- tokens -------------------------------------------------------------------

class _Tok:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind, value, pos):
        self.kind = kind      # 'ident' 'kw' 'num' 'bytes' 'str' 'op' 'end'
        self.value = value
        self.pos = pos

    def __repr__(self):
        return f"{self.kind}:{self.value!r}@{self.pos}"


def _err(msg, pos=None):
    where = f" at position {pos}" if pos is not None else ""
    return BadRequest(f"invalid query{where}: {msg}")


def _string_literal(text, i, is_bytes):
    """Parse a quoted literal starting at text[i] (the quote) -> (value, end).
    Bytes literals: characters as UTF-8, \\xHH as that byte; strings: \\xHH as
    that code point."""
    quote = text[i]
    start = i
    i += 1
    out = bytearray() if is_bytes else []
    while True:
        if i >= len(text):
            raise _err("unterminated string", start)
        c = text[i]
        if c == quote:
            i += 1
            break
        if c == "\\":
            e = text[i + 1] if i + 1 < len(text) else ""
            if e in _ESCAPES:
                piece = _ESCAPES[e]
                i += 2
            elif e == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2:i + 4]):
                code = int(text[i + 2:i + 4], 16)
                i += 4
                if is_bytes:
                    out.append(code)
                    continue
                piece = chr(code)
            elif not e:
                raise _err("unterminated string", start)
            else:
                raise _err(f"unsupported escape \\{e}", i)
        else:
            piece = c
            i += 1
        if is_bytes:
            out += piece.encode("utf-8")
        else:
            out.append(piece)
    return (bytes(out) if is_bytes else "".join(out)), i


def tokenize(text: str) -> list:
    toks = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "()," or c in "&|":
            toks.append(_Tok("op", c, i))
            i += 1
            continue
        two = text[i:i + 2]
        if two in ("<=", ">=", "==", "!="):
            toks.append(_Tok("op", two, i))
            i += 2
            continue
        if c in "<>":
            toks.append(_Tok("op", c, i))
            i += 1
            continue
        if c in "+-":
            toks.append(_Tok("sign", c, i))
            i += 1
            continue
        if c in "bB" and i + 1 < n and text[i + 1] in "'\"":
            value, j = _string_literal(text, i + 1, True)
            toks.append(_Tok("bytes", value, i))
            i = j
            continue
        if c in "'\"":
            value, j = _string_literal(text, i, False)
            toks.append(_Tok("str", value, i))
            i = j
            continue
        m = _NUMBER_RE.match(text, i)
        if m:
            j = m.end()
            if j < n and (text[j].isalnum() or text[j] in "_."):
                raise _err(f"invalid number {text[i:j + 1]!r}", i)
            literal = m.group(0)
            if m.group(2) or "." in literal:
                value = float(literal)
            else:
                value = int(literal)
            toks.append(_Tok("num", value, i))
            i = j
            continue
        m = _IDENT_RE.match(text, i)
        if m:
            word = m.group(0)
            if word in ("AND", "OR"):       # HSDS's spelling of & and |
                toks.append(_Tok("op", "&" if word == "AND" else "|", i))
            else:
                toks.append(_Tok("kw" if word in KEYWORDS else "ident", word, i))
            i = m.end()
            continue
        if c == "=":
            raise _err("'=' is not a comparison (use '==')", i)
        raise _err(f"unexpected character {c!r}", i)
    toks.append(_Tok("end", None, n))
    return toks


# ---- field typing ---------------------------------------------------------------

def _field_kind(dt: np.dtype) -> str:
    """'num', 'complex', 'bytes', 'ustr', 'vstr', 'vbytes' or 'other'."""
    if dt.shape or dt.names:
        return "other"
    k = dt.kind
    if k in "iufb":
        return "num"
    if k == "c":
        return "complex"
    if k == "S":
        return "bytes"
    if k == "U":
        return "ustr"
    if k == "O":
        vlen = (dt.metadata or {}).get("vlen")
        if vlen is str:
            return "vstr"
        if vlen is bytes and (dt.metadata or {}).get("ref") is None:
            return "vbytes"
    return "other"


# ---- AST ------------------------------------------------------------------------
# ("or", [nodes]) | ("and", [nodes]) | ("cmp", op, field, literal)
# | ("fcmp", op, field_a, field_b) | ("const", bool)

@dataclass(repr=False)
class Query:
    """A parsed query.  mask(arr) -> bool ndarray over a 1-D structured array."""
    text: str
    ast: tuple | None
    where_field: str | None
    where_values: list
    fields_used: list

    @property
    def has_where_in(self) -> bool:
        return self.where_field is not None

    def __repr__(self):
        return f"Query({self.text!r})"

    def mask(self, arr) -> np.ndarray:
        arr = np.asarray(arr)
        if arr.dtype.names is None:
            if set(self.fields_used) - {VALUE_FIELD}:
                raise BadRequest("queries need a compound dataset")
            arr = _Values(arr)
        missing = [f for f in self.fields_used if f not in arr.dtype.names]
        if missing:
            raise BadRequest(f"unknown field {missing[0]!r} in query")
        result = None
        if self.ast is not None:
            result = _eval(self.ast, arr)
        if self.where_field is not None:
            col = arr[self.where_field]
            kind = _field_kind(col.dtype)
            m = _isin(col, kind, self.where_values)
            result = m if result is None else (result & m)
        if result.shape != arr.shape:
            result = np.broadcast_to(result, arr.shape).copy()
        return result


class _Values:
    """The elements of a non-compound array as the one field `_` (any shape)."""

    def __init__(self, arr):
        self.arr, self.shape = arr, arr.shape
        self.dtype = np.dtype([(VALUE_FIELD, arr.dtype)])

    def __getitem__(self, name):
        return self.arr


def _eval(node, arr):
    tag = node[0]
    if tag == "or":
        out = _eval(node[1][0], arr)
        for child in node[1][1:]:
            out = out | _eval(child, arr)
        return out
    if tag == "and":
        out = _eval(node[1][0], arr)
        for child in node[1][1:]:
            out = out & _eval(child, arr)
        return out
    if tag == "const":
        return np.full(arr.shape, node[1], dtype=bool)
    if tag == "cmp":
        _, op, field, lit = node
        col = arr[field]
        return _compare(col, _field_kind(col.dtype), op, lit)
    if tag == "fcmp":
        _, op, fa, fb = node
        a, b = arr[fa], arr[fb]
        ka = _field_kind(a.dtype)
        if ka in ("vstr", "vbytes"):
            return _obj_compare_cols(a, b, op, ka)
        try:
            return np.asarray(_NUMPY_OPS[op](a, b), dtype=bool)
        except TypeError as e:
            raise BadRequest(f"cannot compare {fa!r} with {fb!r}: {e}")
    raise BadRequest("invalid query")                # pragma: no cover


def _empty_of(kind):
    return "" if kind == "vstr" else b""


def _norm_obj(e, kind):
    if e is None or (isinstance(e, (int, np.integer)) and not isinstance(e, bool) and e == 0):
        return _empty_of(kind)
    if kind == "vstr" and isinstance(e, (bytes, np.bytes_)):
        return bytes(e).decode("utf-8", "replace")
    if kind == "vbytes" and isinstance(e, str):
        return e.encode("utf-8")
    return e


def _obj_compare(col, kind, op, lit):
    fn = _PY_OPS[op]
    flat = col.reshape(-1)
    out = np.fromiter((fn(_norm_obj(e, kind), lit) for e in flat), dtype=bool,
                      count=flat.shape[0])
    return out.reshape(col.shape)


def _obj_compare_cols(a, b, op, kind):
    fn = _PY_OPS[op]
    fa, fb = a.reshape(-1), b.reshape(-1)
    out = np.fromiter((fn(_norm_obj(x, kind), _norm_obj(y, kind)) for x, y in zip(fa, fb)),
                      dtype=bool, count=fa.shape[0])
    return out.reshape(a.shape)


def _compare(col, kind, op, lit):
    if lit is _NEVER:
        return np.full(col.shape, op == "!=", dtype=bool)
    if kind in ("vstr", "vbytes"):
        return _obj_compare(col, kind, op, lit)
    try:
        with np.errstate(invalid="ignore"):
            return np.asarray(_NUMPY_OPS[op](col, lit), dtype=bool)
    except (TypeError, OverflowError) as e:
        raise BadRequest(f"cannot compare field with {lit!r}: {e}")


def _isin(col, kind, lits):
    lits = [v for v in lits if v is not _NEVER]
    if not lits:
        return np.zeros(col.shape, dtype=bool)
    if kind in ("vstr", "vbytes"):
        wanted = set(lits)
        flat = col.reshape(-1)
        return np.fromiter((_norm_obj(e, kind) in wanted for e in flat), dtype=bool,
                           count=flat.shape[0]).reshape(col.shape)
    out = np.zeros(col.shape, dtype=bool)
    if kind == "bytes" or len(lits) > 8:
        try:
            return np.isin(col, np.array(lits) if kind == "bytes" else lits)
        except (TypeError, ValueError, OverflowError):
            pass
    for v in lits:
        out |= _compare(col, kind, "==", v)
    return out


class _Never:
    """A literal that can never equal the field (a str against a bytes field)."""

    def __repr__(self):
        return "<never>"


_NEVER = _Never()


# ---- parser ---------------------------------------------------------------------

class TokenStream:
    """The tokens of a query text, read front to back (also the domain query's)."""

    def __init__(self, text):
        self.toks = tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok


class _Parser(TokenStream):
    def __init__(self, text, dtype):
        super().__init__(text)
        self.text = text
        self.dtype = dtype
        self.depth = 0
        self.used = []

    def expect_op(self, value):
        tok = self.take()
        if tok.kind != "op" or tok.value != value:
            raise _err(f"expected {value!r}, found {_describe(tok)}", tok.pos)
        return tok

    def use(self, name, tok):
        if name not in (self.dtype.names or ()):
            raise _err(f"unknown name {name!r}", tok.pos)
        if name not in self.used:
            self.used.append(name)
        return name

    # query := expr [where ...] | where ...
    def parse(self):
        ast = None
        tok = self.peek()
        if tok.kind == "end":
            raise _err("empty query")
        if not (tok.kind == "kw" and tok.value == "where"):
            ast = self.expr()
        where_field = where_values = None
        tok = self.peek()
        if tok.kind == "kw" and tok.value == "where":
            self.take()
            where_field, where_values = self.where_clause()
            tok = self.peek()
        if tok.kind != "end":
            raise _err(f"unexpected {_describe(tok)}", tok.pos)
        ordered = tuple(n for n in self.dtype.names if n in self.used)
        return Query(self.text, ast, where_field, where_values, ordered)

    def where_clause(self):
        tok = self.take()
        if tok.kind != "ident":
            raise _err(f"expected a field name after 'where', found {_describe(tok)}",
                       tok.pos)
        field = self.use(tok.value, tok)
        kind = _field_kind(self.dtype[field])
        kw = self.take()
        if kw.kind != "kw" or kw.value != "in":
            raise _err(f"expected 'in', found {_describe(kw)}", kw.pos)
        self.expect_op("(")
        lits = []
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.value == ")" and lits:
                break
            lit, ltok = self.literal()
            lits.append(_coerce(field, kind, "==", lit, ltok))
            tok = self.peek()
            if tok.kind == "op" and tok.value == ",":
                self.take()
                continue
            if not (tok.kind == "op" and tok.value == ")"):
                raise _err(f"expected ',' or ')', found {_describe(tok)}", tok.pos)
        self.expect_op(")")
        return field, tuple(lits)

    def literal(self):
        tok = self.take()
        if tok.kind == "sign":
            num = self.take()
            if num.kind != "num":
                raise _err(f"expected a number after {tok.value!r}", num.pos)
            return (-num.value if tok.value == "-" else num.value), tok
        if tok.kind in ("num", "bytes", "str"):
            return tok.value, tok
        raise _err(f"expected a literal, found {_describe(tok)}", tok.pos)

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _err("expression nested too deeply")
        terms = [self.term()]
        while self.peek().kind == "op" and self.peek().value == "|":
            self.take()
            terms.append(self.term())
        self.depth -= 1
        return terms[0] if len(terms) == 1 else ("or", terms)

    def term(self):
        factors = [self.factor()]
        while self.peek().kind == "op" and self.peek().value == "&":
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else ("and", factors)

    def factor(self):
        tok = self.peek()
        if tok.kind == "op" and tok.value == "(":
            self.take()
            node = self.expr()
            close = self.take()
            if close.kind != "op" or close.value != ")":
                raise _err(f"unbalanced parentheses: expected ')', found {_describe(close)}",
                           close.pos)
            return node
        left, ltok = self.operand()
        op_tok = self.take()
        if op_tok.kind != "op" or op_tok.value not in CMP_OPS:
            raise _err(f"expected a comparison operator after {_describe(ltok)}, "
                       f"found {_describe(op_tok)}", op_tok.pos)
        right, rtok = self.operand()
        return self.comparison(op_tok.value, left, ltok, right, rtok)

    def operand(self):
        tok = self.peek()
        if tok.kind == "ident":
            self.take()
            return ("field", self.use(tok.value, tok)), tok
        if tok.kind == "kw":
            raise _err(f"unexpected keyword {tok.value!r}", tok.pos)
        if tok.kind in ("num", "bytes", "str", "sign"):
            value, ltok = self.literal()
            return ("lit", value), ltok
        raise _err(f"expected a field name or a literal, found {_describe(tok)}", tok.pos)

    def comparison(self, op, left, ltok, right, rtok):
        if left[0] == "lit" and right[0] == "lit":
            raise _err("a comparison needs a field name", ltok.pos)
        if left[0] == "field" and right[0] == "field":
            ka, kb = _field_kind(self.dtype[left[1]]), _field_kind(self.dtype[right[1]])
            for name, k in ((left[1], ka), (right[1], kb)):
                if k == "other":
                    raise _err(f"field {name!r} cannot be compared", ltok.pos)
            groups = {"num": "num", "complex": "num", "bytes": "bytes", "vbytes": "bytes",
                      "ustr": "str", "vstr": "str"}
            if groups[ka] != groups[kb] or (ka != kb and "v" in (ka[0], kb[0])):
                raise _err(f"cannot compare {left[1]!r} with {right[1]!r}", ltok.pos)
            if op in _ORDERING and "complex" in (ka, kb):
                raise _err("complex numbers have no ordering", ltok.pos)
            return ("fcmp", op, left[1], right[1])
        if left[0] == "lit":                     # literal cmp field -> field flip(cmp) literal
            left, right, ltok, rtok, op = right, left, rtok, ltok, _FLIP[op]
        field = left[1]
        lit = _coerce(field, _field_kind(self.dtype[field]), op, right[1], rtok)
        return ("cmp", op, field, lit)


def _describe(tok):
    if tok.kind == "end":
        return "end of query"
    return repr(tok.value)


def _coerce(field, kind, op, lit, tok):
    """The literal as compared against a field of this kind (400 if impossible)."""
    if kind == "other":
        raise _err(f"field {field!r} cannot be compared", tok.pos)
    if kind in ("num", "complex"):
        if not isinstance(lit, (int, float)):
            raise _err(f"cannot compare numeric field {field!r} with a string", tok.pos)
        if kind == "complex" and op in _ORDERING:
            raise _err("complex numbers have no ordering", tok.pos)
        return lit
    if isinstance(lit, (int, float)):
        raise _err(f"cannot compare string field {field!r} with a number", tok.pos)
    if kind in ("bytes", "vbytes"):
        if isinstance(lit, str):
            if op in _ORDERING:
                raise _err(f"cannot order bytes field {field!r} against a str literal; "
                           "use b'...'", tok.pos)
            return _NEVER                        # documented: 'x' never matches bytes
        return lit
    # 'ustr' / 'vstr': text fields
    if isinstance(lit, bytes):
        try:
            return lit.decode("utf-8")
        except UnicodeDecodeError:
            raise _err("invalid UTF-8 in bytes literal", tok.pos)
    return lit


def parse_query(text, dtype) -> Query:
    """Parse a query against a compound (structured) dtype; BadRequest on any error."""
    if not isinstance(text, str):
        raise BadRequest("query must be a string")
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequest("query too long")
    dtype = np.dtype(dtype)
    if dtype.names is None:     # the elements themselves, named `_` (as HSDS names them)
        if dtype.shape or dtype.kind == "O":
            raise BadRequest("queries need a compound dataset or one of numbers or strings")
        dtype = np.dtype([(VALUE_FIELD, dtype)])
    return _Parser(text, dtype).parse()


# ---- query update ---------------------------------------------------------------

def _convert_value(name, dt, value):
    kind = dt.kind
    if dt.shape:
        try:
            arr = np.array(value, dtype=dt.base)
        except (TypeError, ValueError, OverflowError) as e:
            raise BadRequest(f"invalid value for field {name!r}: {e}")
        if arr.shape != dt.shape:
            raise BadRequest(f"value for field {name!r} must have shape {list(dt.shape)}")
        return arr
    if kind == "b":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return np.bool_(bool(value))
        raise BadRequest(f"field {name!r} needs true/false")
    if kind in "iu":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"field {name!r} needs an integer, got {value!r}")
        info = np.iinfo(dt)
        if not info.min <= value <= info.max:
            raise BadRequest(f"value {value} out of range for field {name!r}")
        return np.array(value, dtype=dt)[()]
    if kind == "f":
        if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity",
                                                         "-infinity"):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"field {name!r} needs a number, got {value!r}")
        with np.errstate(over="ignore"):
            return np.array(value, dtype=dt)[()]
    if kind == "S":
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, bytes):
            raise BadRequest(f"field {name!r} needs a string, got {value!r}")
        return np.array(value, dtype=dt)[()]          # NUL padded / truncated
    if kind == "O":
        fk = _field_kind(dt)
        if fk == "vstr" and isinstance(value, str):
            return value
        if fk == "vbytes" and isinstance(value, str):
            return value.encode("utf-8")
        raise BadRequest(f"field {name!r} cannot be updated with {value!r}")
    try:
        return np.array(value, dtype=dt)[()]
    except (TypeError, ValueError, OverflowError) as e:
        raise BadRequest(f"invalid value for field {name!r}: {e}")


def parse_update(body, dtype) -> dict:
    """The field -> new value map of a query-update body ({"open": 999}): values
    converted to the field dtype (400 if impossible).  Keys that are not fields
    of the type are ignored; a body with none -> 400."""
    if not isinstance(body, dict):
        raise BadRequest("query update body must be an object of field values")
    dtype = np.dtype(dtype)
    names = dtype.names or ()
    out = {}
    for name in names:
        if name in body:
            out[name] = _convert_value(name, dtype[name], body[name])
    if not out:
        raise BadRequest("query update body names no field of the dataset type")
    return out
