from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import ApiKey, User

admin.site.register(User, UserAdmin)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created by their owners; the admin shows prefixes only and can revoke."""

    list_display = ("name", "prefix", "user", "created", "last_used", "expiry_date", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "user", "created", "last_used")
    exclude = ("id", "hashed_key")

    def has_add_permission(self, request) -> bool:
        return False
