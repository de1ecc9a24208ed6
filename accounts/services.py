"""Everything that writes accounts data."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import ApiKey, User


def api_key_create(
    *, user: User, name: str, expires_in_days: int | None = None
) -> tuple[ApiKey, str]:
    """Create a key for ``user``; returns the row and the full key, which is never stored."""
    expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    return ApiKey.objects.create_key(user=user, name=name[:50] or "API key", expiry_date=expiry)


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key for good (revocation cannot be undone)."""
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])


#: ``whsec_`` and 32 random bytes in hex: recognisable where it leaks, like the keys.
WEBHOOK_SECRET_PREFIX = "whsec_"


def _new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_hex(29)  # 64 characters in all


def webhook_secret_of(*, user: User) -> str:
    """The secret ``user``'s webhook deliveries are signed with, made on first use (a
    conditional write: two first uses at once agree on one secret)."""
    if not user.webhook_secret:
        User.objects.filter(pk=user.pk, webhook_secret="").update(
            webhook_secret=_new_webhook_secret()
        )
        user.webhook_secret = User.objects.values_list("webhook_secret", flat=True).get(pk=user.pk)
    return user.webhook_secret


def webhook_secret_rotate(*, user: User) -> str:
    """Replace the user's webhook secret; deliveries from now on are signed with the new one."""
    user.webhook_secret = _new_webhook_secret()
    User.objects.filter(pk=user.pk).update(webhook_secret=user.webhook_secret)
    return user.webhook_secret


@transaction.atomic
def demo_user_ensure(*, username: str = "demo") -> tuple[User, str | None]:
    """Create the demo user unless any user exists; returns the password once when created."""
    if User.objects.exists():
        return User.objects.order_by("date_joined").first(), None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(username=username, password=password)
    return user, password
