"""Prompt syntax, as AUTOMATIC1111 users write it (plain Python, no torch).

- ``(words)`` weighs them 1.1, ``[words]`` 1 / 1.1, ``(words:1.3)`` 1.3; brackets nest and
  multiply; ``\\(``, ``\\)``, ``\\[``, ``\\]`` and ``\\\\`` are the characters themselves.
- ``<lora:name:0.8>`` applies a LoRA of the library at that weight (1 when no weight is
  given); it is taken out of the text that reaches the text encoder.

A bracket that is never closed, or a closing one with nothing to close, is an
``InvalidInput`` that says where it is (the API answers 400), instead of A1111's silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .types import InvalidInput

#: A1111's factor for one pair of round brackets.
EMPHASIS = 1.1
_TOKENS = re.compile(
    r"""
      (?P<escaped>\\[()\[\]\\])
    | (?P<weight>:\s*(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\))
    | (?P<open>[(\[])
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+|[:\\])
    """,
    re.VERBOSE,
)
_LORA = re.compile(r"<lora:(?P<name>[^:>]+)(?::(?P<weight>[^>]*))?>")


@dataclass(frozen=True)
class LoraUse:
    name: str
    weight: float


def _where(text: str, position: int) -> str:
    start = max(position - 15, 0)
    return f"character {position + 1} ({text[start : position + 15]!r})"


def parse_weights(text: str, *, field: str = "prompt") -> list[tuple[str, float]]:
    """``text`` as fragments with their weights, neighbours of one weight merged; an empty
    text is one empty fragment."""
    pieces: list[list] = []  # [text, weight]
    stack: list[tuple[str, int, int]] = []  # (bracket, where it opened, first piece inside)

    def close(kind: str, position: int, factor: float) -> None:
        if not stack:
            raise InvalidInput(
                f"The {field} has a '{kind}' that closes nothing, at {_where(text, position)}; "
                "write \\" + kind + " for the character itself.",
                field=field,
            )
        bracket, opened, first = stack.pop()
        if (bracket == "(") != (kind == ")"):
            raise InvalidInput(
                f"The {field} closes '{bracket}' (at character {opened + 1}) with '{kind}', at "
                f"{_where(text, position)}.",
                field=field,
            )
        for piece in pieces[first:]:
            piece[1] *= factor

    for match in _TOKENS.finditer(text):
        position = match.start()
        if match.group("escaped"):
            pieces.append([match.group("escaped")[1], 1.0])
        elif match.group("weight"):
            if not stack or stack[-1][0] != "(":
                pieces.append([match.group("weight"), 1.0])  # plain text, as A1111 reads it
                continue
            close(")", match.end() - 1, float(match.group("number")))
        elif match.group("open"):
            stack.append((match.group("open"), position, len(pieces)))
        elif match.group("close"):
            kind = match.group("close")
            close(kind, position, EMPHASIS if kind == ")" else 1 / EMPHASIS)
        else:
            pieces.append([match.group("text"), 1.0])
    if stack:
        bracket, opened, _ = stack[-1]
        raise InvalidInput(
            f"The {field} has a '{bracket}' that is never closed, at {_where(text, opened)}; "
            "write \\" + bracket + " for the character itself.",
            field=field,
        )
    merged: list[tuple[str, float]] = []
    for piece, weight in pieces:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + piece, weight)
        else:
            merged.append((piece, weight))
    return merged or [("", 1.0)]


def split_loras(
    text: str, *, field: str = "prompt", strict: bool = True
) -> tuple[str, list[LoraUse]]:
    """The text without its ``<lora:name:weight>`` tags, and the LoRAs they name; a weight
    that is not a number is an ``InvalidInput`` (``strict=False``: that tag is left out)."""
    uses = []
    for match in _LORA.finditer(text):
        weight = match.group("weight")
        try:
            value = 1.0 if weight in (None, "") else float(weight)
        except ValueError:
            if not strict:
                continue
            raise InvalidInput(
                f"The LoRA weight {weight!r} in {match.group(0)!r} is not a number.",
                field=field,
            ) from None
        uses.append(LoraUse(match.group("name").strip(), value))
    return _LORA.sub("", text), uses


def check_prompts(prompt: str, negative_prompt: str) -> None:
    """Refuse, before queueing, a prompt whose syntax cannot be read (``InvalidInput``)."""
    text, _ = split_loras(prompt)
    parse_weights(text, field="prompt")
    parse_weights(negative_prompt, field="negative_prompt")


def plain_text(fragments: list[tuple[str, float]]) -> str:
    """The words of a weighted prompt without their weights."""
    return "".join(text for text, _ in fragments)
