from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from . import services
from .models import GeneratedImage, Generation


class GeneratedImageInline(admin.TabularInline):
    """Outputs, shown through the permission-checking image view (media is private)."""

    model = GeneratedImage
    extra = 0
    can_delete = False
    fields = ("index", "preview", "width", "height", "seed")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="image")
    def preview(self, obj: GeneratedImage) -> str:
        if obj.generation_id is None:
            return "-"
        url = reverse("api:generation-image", args=[obj.generation_id, obj.index])
        return format_html('<a href="{}"><img src="{}" style="max-height:128px"></a>', url, url)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "status",
        "engine",
        "client",
        "prompt_short",
        "created_at",
        "total_seconds",
    )
    list_filter = ("status", "engine", "client", "created_at")
    search_fields = ("prompt", "owner__username")
    readonly_fields = [f.name for f in Generation._meta.fields]
    inlines = [GeneratedImageInline]
    date_hierarchy = "created_at"

    @admin.display(description="prompt")
    def prompt_short(self, obj: Generation) -> str:
        return (obj.prompt[:60] + "…") if len(obj.prompt) > 60 else obj.prompt

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj: Generation) -> None:
        services.generation_delete(generation=obj)

    def delete_queryset(self, request, queryset) -> None:
        for generation in queryset:
            services.generation_delete(generation=generation)
