"""The shape of a DreamLayer API key, ``dl_<8 chars>.<32 chars>`` (no Django imports, so log
redaction can use it before Django is set up)."""

import re

KEY_PREFIX = "dl_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 32
KEY_PATTERN = re.compile(
    rf"{KEY_PREFIX}[A-Za-z0-9]{{{PREFIX_LENGTH}}}\.[A-Za-z0-9]{{{SECRET_LENGTH}}}"
)


def redact(text: str) -> str:
    """``text`` with every API key replaced by its prefix and ``.[redacted]``."""
    return KEY_PATTERN.sub(lambda m: m.group(0).partition(".")[0] + ".[redacted]", text)
