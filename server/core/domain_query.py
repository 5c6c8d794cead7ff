"""Domain queries (`GET /domains?query=…`, REST_API.md §4.5 and §11.6): a boolean
expression over the scalar attributes of each domain's root group.

Grammar (the dataset query's tokens; AND/OR are also words, any case)::

    expr    := term { ("|" | OR) term }
    term    := factor { ("&" | AND) factor }
    factor  := "(" expr ")" | operand cmp operand
    operand := attribute name | ["-"|"+"] number | '...' | "..." | b'...'

A comparison with an attribute the domain lacks, or one that is not a scalar
number or string, or of the other kind than its literal, is false: such domains
are left out. Syntax errors are a 400.
"""
import operator

from .errors import BadRequest
from .query import CMP_OPS, MAX_DEPTH, MAX_QUERY_LENGTH, TokenStream

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}
_MISSING = object()


class DomainQuery:
    def __init__(self, tree, names):
        self.tree = tree
        self.names = names            # attribute names the query uses

    def matches(self, attributes: dict) -> bool:
        """attributes: name -> the root group's attribute (its JSON, with value)."""
        values = {name: _scalar(attributes.get(name)) for name in self.names}
        return _eval(self.tree, values)


def parse_domain_query(text: str) -> DomainQuery:
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequest("query too long")
    parser = _Parser(text)
    tree = parser.expr(0)
    if parser.peek().kind != "end":
        raise _error("unexpected text", parser.peek().pos)
    return DomainQuery(tree, parser.names)


def _error(message, pos):
    return BadRequest(f"invalid domain query at position {pos}: {message}")


class _Parser(TokenStream):
    def __init__(self, text):
        super().__init__(text)
        self.names = set()

    def _joiner(self, symbol, word) -> bool:
        tok = self.peek()
        if (tok.kind == "op" and tok.value == symbol) or \
                (tok.kind == "ident" and tok.value.upper() == word):
            self.take()
            return True
        return False

    def expr(self, depth):
        if depth > MAX_DEPTH:
            raise _error("nested too deeply", self.peek().pos)
        node = self.term(depth)
        while self._joiner("|", "OR"):
            node = ("or", node, self.term(depth))
        return node

    def term(self, depth):
        node = self.factor(depth)
        while self._joiner("&", "AND"):
            node = ("and", node, self.factor(depth))
        return node

    def factor(self, depth):
        tok = self.peek()
        if tok.kind == "op" and tok.value == "(":
            self.take()
            node = self.expr(depth + 1)
            close = self.take()
            if close.kind != "op" or close.value != ")":
                raise _error("expected ')'", close.pos)
            return node
        left = self.operand()
        op = self.take()
        if op.kind != "op" or op.value not in CMP_OPS:
            raise _error("expected a comparison (<, <=, >, >=, ==, !=)", op.pos)
        right = self.operand()
        if left[0] != "name" and right[0] != "name":
            raise _error("a comparison needs an attribute name", op.pos)
        return ("cmp", op.value, left, right)

    def operand(self):
        tok = self.take()
        if tok.kind == "ident" and tok.value.upper() not in ("AND", "OR"):
            self.names.add(tok.value)
            return ("name", tok.value)
        if tok.kind == "sign":
            num = self.take()
            if num.kind != "num":
                raise _error("expected a number after the sign", num.pos)
            return ("lit", -num.value if tok.value == "-" else num.value)
        if tok.kind in ("num", "str"):
            return ("lit", tok.value)
        if tok.kind == "bytes":
            return ("lit", tok.value.decode("utf-8", "replace"))
        raise _error("expected an attribute name or a literal", tok.pos)


def _scalar(attr):
    """A comparable value of a root attribute: a number or a string, else _MISSING."""
    if not isinstance(attr, dict) or "value" not in attr:
        return _MISSING
    value = attr["value"]
    if isinstance(value, list):                 # a one-element simple space counts too
        if len(value) != 1 or isinstance(value[0], list):
            return _MISSING
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return _MISSING
    return value


def _eval(node, values) -> bool:
    kind = node[0]
    if kind == "or":
        return _eval(node[1], values) or _eval(node[2], values)
    if kind == "and":
        return _eval(node[1], values) and _eval(node[2], values)
    _, op, left, right = node
    a = values[left[1]] if left[0] == "name" else left[1]
    b = values[right[1]] if right[0] == "name" else right[1]
    if a is _MISSING or b is _MISSING or isinstance(a, str) != isinstance(b, str):
        return False
    return _OPS[op](a, b)
