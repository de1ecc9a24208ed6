"""DRF's JSON parser, with a body nested too deep for Python's decoder (a ``RecursionError``,
not a ``ValueError``) answered as the parse error it is, a 400, instead of a 500."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
