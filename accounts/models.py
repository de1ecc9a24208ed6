from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.crypto import get_random_string
from rest_framework_api_key.crypto import KeyGenerator
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from .keyformat import KEY_PREFIX, PREFIX_LENGTH, SECRET_LENGTH


class User(AbstractUser):
    """DreamLayer's user (custom from the first migration, so it can grow)."""

    #: The key this user's webhook deliveries are signed with (``accounts.services.
    #: webhook_secret_of``): one per user, so no user can sign a delivery for another's
    #: receiver. Made on first use; shown on the keys page, where it can be replaced.
    webhook_secret = models.CharField(max_length=64, blank=True, editable=False)
    job_priority = models.SmallIntegerField(
        null=True,
        blank=True,
        help_text="This user's jobs' lane in the queue (higher first); empty: studio jobs 10, "
        "API jobs 0.",
    )


class DreamLayerKeyGenerator(KeyGenerator):
    """Keys look like ``dl_<8 chars>.<32 chars>`` so a leaked key is recognisable."""

    def get_prefix(self) -> str:
        return KEY_PREFIX + get_random_string(self.prefix_length)


class ApiKeyManager(BaseAPIKeyManager):
    key_generator = DreamLayerKeyGenerator(
        prefix_length=PREFIX_LENGTH, secret_key_length=SECRET_LENGTH
    )


class ApiKey(AbstractAPIKey):
    """A personal API key: only the visible prefix and a SHA-512 hash of the key are stored."""

    objects = ApiKeyManager()

    prefix = models.CharField(max_length=16, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    last_used = models.DateTimeField(null=True, blank=True)
    job_priority = models.SmallIntegerField(
        null=True,
        blank=True,
        help_text="The lane of the jobs this key sends (higher first); empty: its user's.",
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    #: ``last_used`` is shown to the minute; writing it on every request would cost a commit
    #: per request for nothing anyone sees.
    TOUCH_INTERVAL = timedelta(minutes=1)

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used is not None and now - self.last_used < self.TOUCH_INTERVAL:
            return
        type(self).objects.filter(pk=self.pk).update(last_used=now)
        self.last_used = now
