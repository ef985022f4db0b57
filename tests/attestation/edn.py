"""A small reader for the CBOR diagnostic notation (EDN) of the spec vectors: maps, arrays,
integers, text, h'..' (adjacent ones concatenated), true/false/null, /comments/. Enough for
specs/vectors/ear/*.diag and vectors/teep/eat_claims.diag; not a general EDN parser."""

import re

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>/[^/]*/) |
        (?P<hex>h'[0-9A-Fa-f\s]*') |
        (?P<text>"(?:[^"\\]|\\.)*") |
        (?P<int>-?\d+) |
        (?P<word>true|false|null) |
        (?P<punct>[{}\[\]:,])
    )""",
    re.X,
)


def _tokens(text: str):
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            if text[pos:].strip() == "":
                return
            raise ValueError(f"EDN: cannot read at {text[pos : pos + 30]!r}")
        pos = match.end()
        kind = match.lastgroup
        if kind != "comment":
            yield kind, match.group(kind)


def loads(text: str):
    tokens = list(_tokens(text))
    value, index = _value(tokens, 0)
    if index != len(tokens):
        raise ValueError("EDN: trailing items")
    return value


def _value(tokens, i):
    kind, tok = tokens[i]
    if kind == "hex":
        data = bytes.fromhex("".join(tok[2:-1].split()))
        i += 1
        while i < len(tokens) and tokens[i][0] == "hex":
            data += bytes.fromhex("".join(tokens[i][1][2:-1].split()))
            i += 1
        return data, i
    if kind == "text":
        import json

        return json.loads(tok), i + 1
    if kind == "int":
        return int(tok), i + 1
    if kind == "word":
        return {"true": True, "false": False, "null": None}[tok], i + 1
    if tok == "[":
        items, i = [], i + 1
        while tokens[i][1] != "]":
            item, i = _value(tokens, i)
            items.append(item)
            if tokens[i][1] == ",":
                i += 1
        return items, i + 1
    if tok == "{":
        result, i = {}, i + 1
        while tokens[i][1] != "}":
            key, i = _value(tokens, i)
            assert tokens[i][1] == ":", f"EDN: ':' expected after {key!r}"
            value, i = _value(tokens, i + 1)
            result[key] = value
            if tokens[i][1] == ",":
                i += 1
        return result, i + 1
    raise ValueError(f"EDN: unexpected {tok!r}")
