"""What every AUTOMATIC1111 view shares: HTTP Basic with the key as the password, A1111's
error body, the schema tag, and a checkpoint's name read from its title."""

from __future__ import annotations

import re

from rest_framework.views import APIView

from accounts.authentication import BasicKeyAuthentication

from ....answers import a1111

TAGS = ["compat: AUTOMATIC1111"]
#: A checkpoint title's short hash: "name.safetensors [6ce0161689]".
TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]\s*$")


class A1111Api:
    """HTTP Basic with the key as the password (or the key headers); A1111's error body. Mixed
    into every A1111 view, the submit-and-wait ones too."""

    authentication_classes = [BasicKeyAuthentication]
    error_shape = staticmethod(a1111.error_body)


class A1111View(A1111Api, APIView):
    """An A1111 view answered at once."""


def without_hash(title: str) -> str:
    """A checkpoint's name from its title: without A1111's ``[hash]`` (or the fill engine's
    mark, ``answers.a1111.FILL_ENGINE_SUFFIX``)."""
    return TITLE_HASH.sub("", title).strip().removesuffix(a1111.FILL_ENGINE_SUFFIX.strip())
