"""Webhooks: one signed POST of the job's final JSON when it ends, retried with backoff.

The signature header is ``X-DreamLayer-Signature: t=<unix time>,id=<delivery id>,v1=<hex>``
where ``v1`` is HMAC-SHA256 over ``"<t>.<id>.<receiver URL>." + body`` with the job owner's
own webhook secret (``accounts.services.webhook_secret_of``): a user cannot sign for another
user's receiver, a delivery cannot be replayed to another URL, and the id (the job's: its
retries carry the same one) lets a receiver refuse one it has seen. Receivers recompute it
and reject stale timestamps. The URL obeys the same rules as URL inputs (no private addresses
unless ``URL_FETCH_ALLOW_PRIVATE``), checked when the job is created and again when sending,
and the POST goes through ``remote``'s one fetcher: to exactly the address it checked, within
``URL_FETCH_TIMEOUT`` in all; redirects are not followed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import F

from accounts.services import webhook_secret_of

from .. import remote
from ..answers.webhooks import payload_for
from ..errors import RemoteInputError
from ..models import Generation
from .queue import send_webhook

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-DreamLayer-Signature"
FIELD = "webhook_url"
Status = Generation.WebhookStatus


class Attempt(enum.Enum):
    DELIVERED = "delivered"
    GAVE_UP = "gave up"
    RETRY = "retry"


def validate_url(url: str) -> remote.CheckedUrl:
    """The checked URL; a ``RemoteInputError`` (a 400 on ``webhook_url``) for a URL we would
    not call."""
    return remote.check_url(url, FIELD)


def sign(*, body: bytes, timestamp: int, delivery: str, url: str, secret: str) -> str:
    """The signature header's value (the module's docstring says what it covers)."""
    signed = f"{timestamp}.{delivery}.{url}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256)
    return f"t={timestamp},id={delivery},v1={digest.hexdigest()}"


def schedule(generation: Generation) -> None:
    """Queue the delivery once the job's final state is committed."""
    if not generation.webhook_url:
        return
    Generation.objects.filter(pk=generation.pk).update(webhook_status=Status.PENDING)
    transaction.on_commit(lambda: send_webhook(generation))


def _record(generation: Generation, **fields) -> None:
    Generation.objects.filter(pk=generation.pk).update(**fields)


def deliver(*, generation_id: str) -> Attempt:
    """One attempt at sending the job's final answer."""
    generation = (
        Generation.objects.select_related("source", "mask", "owner")
        .filter(pk=generation_id)
        .first()
    )
    if generation is None or generation.webhook_status != Status.PENDING:
        return Attempt.GAVE_UP
    Generation.objects.filter(pk=generation.pk).update(webhook_attempts=F("webhook_attempts") + 1)
    attempts = generation.webhook_attempts + 1
    body = json.dumps(payload_for(generation), default=str).encode()
    timestamp = int(time.time())
    try:
        checked = validate_url(generation.webhook_url)
    except RemoteInputError as exc:  # refused now (its name resolves privately): for good
        _record(generation, webhook_status=Status.FAILED, webhook_error=exc.message)
        return Attempt.GAVE_UP
    try:
        status = remote.post(
            checked,
            body=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(
                    body=body,
                    timestamp=timestamp,
                    delivery=str(generation.pk),
                    url=generation.webhook_url,
                    secret=webhook_secret_of(user=generation.owner),
                ),
                "User-Agent": "DreamLayer-Webhook",
            },
            field=FIELD,
        )
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except RemoteInputError as exc:
        error = exc.message
    if not error:
        _record(generation, webhook_status=Status.DELIVERED, webhook_error="")
        return Attempt.DELIVERED
    if attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        message = f"{error} (gave up after {attempts} attempts)"
        _record(generation, webhook_status=Status.FAILED, webhook_error=message)
        return Attempt.GAVE_UP
    _record(generation, webhook_error=error)
    logger.info("webhook for %s failed (%s); retrying", generation.pk, error)
    return Attempt.RETRY
