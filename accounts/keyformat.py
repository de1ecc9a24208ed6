"""The shape of a DreamLayer API key, ``dl_<8 chars>.<32 chars>`` (no Django imports, so log
redaction can use it before Django is set up)."""

import logging
import re

KEY_PREFIX = "dl_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 32
KEY_PATTERN = re.compile(
    rf"{KEY_PREFIX}[A-Za-z0-9]{{{PREFIX_LENGTH}}}\.[A-Za-z0-9]{{{SECRET_LENGTH}}}"
)


#: A key in the path (``accounts.pathkey``, ADR 8): ``/k/<key>`` and the rest of the path.
KEY_IN_PATH = re.compile(r"^/k/(?P<key>[^/]*)(?P<rest>/.*)?$")
#: The same anywhere in a log line (the access log writes the path as it came).
_KEY_IN_LOGGED_PATH = re.compile(r"(/k/)[^/\s?#\"']+")

#: An image link's path (``inpainting.services.links``, ADR 7): OpenAI's, and the output links
#: of ModelsLab, FooocusAPI and deep-image.ai; its token is the permission.
IMAGE_LINK_PATTERN = re.compile(r"(/v1/images/files/|/api/links/)[^\s?#\"']+")


def redact(text: str) -> str:
    """``text`` with every API key replaced by its prefix and ``.[redacted]``, and whatever
    follows ``/k/`` in a path and every image link's token by ``[redacted]``: what the access
    log and the logs write."""
    text = KEY_PATTERN.sub(lambda m: m.group(0).partition(".")[0] + ".[redacted]", text)
    text = _KEY_IN_LOGGED_PATH.sub(r"\1[redacted]", text)
    return IMAGE_LINK_PATTERN.sub(r"\1[redacted]", text)


class RedactingFilter(logging.Filter):
    """A logging filter: the record's message with ``redact`` applied (Django logs the path
    of every 4xx answer, an image link's among them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
