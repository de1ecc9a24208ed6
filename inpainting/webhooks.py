"""Webhooks: one signed POST of the job's final JSON when it ends, retried with backoff.

The signature header is ``X-DreamLayer-Signature: t=<unix time>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 over ``"<t>." + body`` with ``WEBHOOK_SECRET``; receivers recompute it and
reject stale timestamps. The URL obeys the same rules as URL inputs (no private addresses
unless ``URL_FETCH_ALLOW_PRIVATE``), checked when the job is created and again when sending,
and the POST goes through ``remote``'s one fetcher: to exactly the address it checked, within
``URL_FETCH_TIMEOUT`` in all; redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import F

from . import remote
from .models import Generation
from .remote import RemoteInputError, check_url

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-DreamLayer-Signature"


class WebhookRefused(Exception):
    pass


def validate_url(url: str) -> remote.CheckedUrl:
    """The checked URL; ``WebhookRefused`` with a clear reason for a URL we would not call."""
    try:
        return check_url(url, "webhook_url")
    except RemoteInputError as exc:
        raise WebhookRefused(exc.message) from None


def sign(body: bytes, timestamp: int, secret: str | None = None) -> str:
    secret = secret or settings.WEBHOOK_SECRET
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def schedule(generation: Generation) -> None:
    """Queue the delivery once the job's final state is committed."""
    if not generation.webhook_url:
        return
    Generation.objects.filter(pk=generation.pk).update(webhook_status="pending")
    from .tasks import deliver_webhook

    transaction.on_commit(lambda: deliver_webhook.delay(str(generation.pk)))


def deliver(*, generation_id: str) -> str:
    """One attempt: ``delivered``, ``failed`` (given up) or ``retry``."""
    from .api.webhook_payloads import payload_for

    generation = (
        Generation.objects.select_related("source", "mask").filter(pk=generation_id).first()
    )
    if generation is None or not generation.webhook_url or generation.webhook_status != "pending":
        return "failed"
    Generation.objects.filter(pk=generation.pk).update(webhook_attempts=F("webhook_attempts") + 1)
    attempts = generation.webhook_attempts + 1
    body = json.dumps(payload_for(generation), default=str).encode()
    timestamp = int(time.time())
    try:
        checked = validate_url(generation.webhook_url)
    except WebhookRefused as exc:
        Generation.objects.filter(pk=generation.pk).update(
            webhook_status="failed", webhook_error=str(exc)
        )
        return "failed"
    try:
        status = remote.post(
            checked,
            body=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, timestamp),
                "User-Agent": "DreamLayer-Webhook",
            },
            field="webhook_url",
        )
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except RemoteInputError as exc:
        error = exc.message
    if not error:
        Generation.objects.filter(pk=generation.pk).update(
            webhook_status="delivered", webhook_error=""
        )
        return "delivered"
    if attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        Generation.objects.filter(pk=generation.pk).update(
            webhook_status="failed", webhook_error=f"{error} (gave up after {attempts} attempts)"
        )
        return "failed"
    Generation.objects.filter(pk=generation.pk).update(webhook_error=error)
    logger.info("webhook for %s failed (%s); retrying", generation.pk, error)
    return "retry"
