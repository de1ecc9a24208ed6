"""Client JSON, parsed within a budget: the one place that does it (the JSON body parser, and
the JSON a form field carries). Python's decoder builds every element of a body, so a 29 MB
body of 14.5 million zeros cost a web process a minute of CPU and 1.8 GB; the count of
elements is bounded first by a byte count (``bytes.count``, in C: 10 ms for 29 MB), and a body
nested too deep for the decoder (a ``RecursionError``, not a ``ValueError``) is the parse error
it is, a 400, not a 500."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

#: The most elements a client's JSON may hold (values in arrays and objects): every request
#: here takes a few dozen fields and lists of at most hundreds (``BoundedListField``, which
#: names the field of a longer list: a 400,000-item list gets that message). A million
#: decode in about 0.1 s; the 29 MB attack's 14.5 million are refused by the count alone.
MAX_JSON_ELEMENTS = 1_000_000


class TooManyElements(ValueError):
    pass


def json_loads(text: str | bytes) -> Any:
    """``text`` decoded, after a bound on its elements: its commas, brackets and braces (an
    upper bound of its elements, those inside strings counted too) at most
    MAX_JSON_ELEMENTS, else ``TooManyElements`` (a ``ValueError``, as a decoding error is)."""
    raw = text.encode() if isinstance(text, str) else text
    separators = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if separators > MAX_JSON_ELEMENTS:
        raise TooManyElements(
            f"the JSON holds more than {MAX_JSON_ELEMENTS} elements (arrays and objects "
            "together); no request here needs that many"
        )
    return json.loads(raw, parse_constant=_no_constant)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # as DRF's strict parser refuses NaN and Infinity


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return json_loads(raw)
        except TooManyElements as exc:
            raise ParseError(f"JSON parse error - {exc}.") from None
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
