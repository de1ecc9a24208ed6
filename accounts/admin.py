from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from rest_framework_api_key.models import APIKey as LibraryApiKey

from inpainting.models import stored_bytes

from .models import ApiKey, User


@admin.register(User)
class DreamLayerUserAdmin(UserAdmin):
    """Django's user admin, with the storage each user's pictures take (issue 52) and the
    lane of the user's jobs in the queue (docs/scaling-out.md, "The queue's order")."""

    list_display = (*UserAdmin.list_display, "storage", "job_priority")
    fieldsets = (*UserAdmin.fieldsets, ("The queue", {"fields": ("job_priority",)}))

    @admin.display(description="storage")
    def storage(self, user: User) -> str:
        return f"{stored_bytes(user_id=user.pk) / 1e6:,.1f} MB"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created by their owners; the admin shows prefixes only and can revoke."""

    list_display = (
        "name",
        "prefix",
        "user",
        "created",
        "last_used",
        "expiry_date",
        "revoked",
        "job_priority",
    )
    list_filter = ("revoked",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "user", "created", "last_used")
    exclude = ("id", "hashed_key")

    def has_add_permission(self, request) -> bool:
        return False


# djangorestframework-api-key registers an admin for its own APIKey model, which DreamLayer
# does not use (keys are accounts.ApiKey): one key admin only.
admin.site.unregister(LibraryApiKey)
