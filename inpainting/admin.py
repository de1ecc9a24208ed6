from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import scheduler, selectors
from .conf import lama_file
from .engine.memory import CHOICES as MEMORY_PLANS
from .errors import ClientError
from .models import (
    ACCESS_KINDS,
    INSTALL_KINDS,
    LAMA,
    GeneratedImage,
    Generation,
    GenerationLayer,
    GenerationReference,
    GroupAccess,
    GroupUsage,
    LibraryModel,
    ModelInstall,
    UsageQuota,
    UserUsage,
    stored_bytes,
)
from .params import GenerationParams
from .services import generations, installs, library, licences
from .services.pictures import layer_part


def _image_tag(generation_id, part: str, full: str, height: int = 64) -> str:
    """The thumbnail of ``part`` of a generation, linked to the picture at full size (the
    ``full`` URL name, with ``part`` when it is an output's index)."""
    thumbnail = reverse("api:generation-thumbnail", args=[generation_id, part])
    args = [generation_id, part] if part.isdigit() else [generation_id]
    return format_html(
        '<a href="{}"><img src="{}" alt="" height="{}"></a>',
        reverse(full, args=args),
        thumbnail,
        height,
    )  # an attribute, not a style: the CSP allows no inline styles


class _StaffReadsInline(admin.TabularInline):
    """A read-only inline every staff member sees, as they see the generation it belongs to."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff


class GeneratedImageInline(_StaffReadsInline):
    """Outputs, shown through the permission-checking image view (media is private)."""

    model = GeneratedImage
    fields = ("index", "preview", "width", "height", "seed")
    readonly_fields = fields

    @admin.display(description="image")
    def preview(self, obj: GeneratedImage) -> str:
        if obj.generation_id is None:
            return "-"
        return _image_tag(obj.generation_id, str(obj.index), "api:generation-image", 160)


class GenerationReferenceInline(_StaffReadsInline):
    """The reference pictures a job sent for an edit model, in order (size and hash)."""

    model = GenerationReference
    fields = ("position", "size", "sha256")
    readonly_fields = fields
    verbose_name = "reference picture"

    @admin.display(description="size")
    def size(self, obj: GenerationReference) -> str:
        return f"{obj.image.width} x {obj.image.height}"

    @admin.display(description="sha256")
    def sha256(self, obj: GenerationReference) -> str:
        return obj.image.sha256


class GenerationLayerInline(_StaffReadsInline):
    """A layered job's layers, bottom up: each one's name, prompt and mask."""

    model = GenerationLayer
    fields = ("position", "name", "prompt", "mask_preview")
    readonly_fields = fields
    verbose_name = "layer"

    def _asked(self, obj: GenerationLayer) -> dict:
        layers = GenerationParams.from_json(obj.generation.params).layers or []
        return layers[obj.position] if obj.position < len(layers) else {}

    @admin.display(description="name")
    def name(self, obj: GenerationLayer) -> str:
        return self._asked(obj).get("name", "-")

    @admin.display(description="prompt")
    def prompt(self, obj: GenerationLayer) -> str:
        return self._asked(obj).get("prompt") or "-"

    @admin.display(description="mask")
    def mask_preview(self, obj: GenerationLayer) -> str:
        part = layer_part(obj.position)
        return format_html(
            '<a href="{}"><img src="{}" alt="" height="96"></a>',
            reverse("api:generation-layer", args=[obj.generation_id, obj.position]),
            reverse("api:generation-thumbnail", args=[obj.generation_id, part]),
        )


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    """Staff review of every user's history: read-only, with cancel, re-run and delete."""

    list_display = (
        "thumbnail",
        "owner",
        "status",
        "engine",
        "client",
        "prompt_short",
        "created_at",
        "duration",
    )
    list_display_links = ("thumbnail", "prompt_short")
    list_filter = ("status", "engine", "model_name", "worker", "client", "owner", "created_at")
    search_fields = ("prompt", "owner__username")
    date_hierarchy = "created_at"
    inlines = [GeneratedImageInline, GenerationReferenceInline, GenerationLayerInline]
    actions = ["cancel_selected", "rerun_selected", "move_to_front", "move_to_back"]
    change_list_template = "admin/inpainting/generation/change_list.html"
    fieldsets = (
        (None, {"fields": ("id", "owner", "status", "error", "client", "api_key")}),
        ("Images", {"fields": ("input_image", "mask_image")}),
        (
            "Parameters",
            {"fields": ("prompt_followed", "parameters", "seed", "engine", "ran", "worker")},
        ),
        (
            "Webhook",
            {"fields": ("webhook_url", "webhook_status", "webhook_attempts", "webhook_error")},
        ),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "finished_at",
                    "queue_seconds",
                    "inference_seconds",
                    "total_seconds",
                    "attempts",
                    "step",
                    "total_steps",
                    "idempotency_key",
                )
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").prefetch_related("images")

    @admin.display(description="result")
    def thumbnail(self, obj: Generation) -> str:
        first = next(iter(obj.images.all()), None)
        if first is None:
            return _image_tag(obj.pk, "input", "api:generation-input")
        return _image_tag(obj.pk, str(first.index), "api:generation-image")

    @admin.display(description="input")
    def input_image(self, obj: Generation) -> str:
        return _image_tag(obj.pk, "input", "api:generation-input", 256)

    @admin.display(description="mask")
    def mask_image(self, obj: Generation) -> str:
        if obj.mask_id is None:
            return "-"
        return _image_tag(obj.pk, "mask", "api:generation-mask", 256)

    @admin.display(description="prompt")
    def prompt_short(self, obj: Generation) -> str:
        """What the history calls the job (a fill engine's ignored prompt is not shown)."""
        words = obj.description
        return (words[:60] + "…") if len(words) > 60 else words

    @admin.display(description="prompt")
    def prompt_followed(self, obj: Generation) -> str:
        return obj.followed_prompt or "(none followed)"

    @admin.display(description="parameters")
    def parameters(self, obj: Generation) -> str:
        """The job's parameters as its detail page shows them (what a fill engine does not
        use left out)."""
        rows = selectors.generation_parameters(generation=obj)
        return format_html_join("\n", "<div><b>{}</b>: {}</div>", rows)

    @admin.display(description="ran")
    def ran(self, obj: Generation) -> str:
        """The model or fill method that ran, and what the worker reported about the run."""
        notes = ", ".join(f"{k}: {v}" for k, v in (obj.metadata or {}).items() if k != "warnings")
        return f"{obj.model_name or '-'}" + (f" ({notes})" if notes else "")

    @admin.display(description="duration (s)", ordering="total_seconds")
    def duration(self, obj: Generation) -> str:
        return f"{obj.total_seconds:.2f}" if obj.total_seconds is not None else "-"

    def has_add_permission(self, request) -> bool:
        return False

    # Every staff member may review the history; acting on it needs the model permissions.
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def get_urls(self):
        queue = path("queue/", self.admin_site.admin_view(self.queue_view), name="generation_queue")
        return [queue, *super().get_urls()]

    def queue_view(self, request):
        """Every queued job, queue by queue, in the order workers take them (fair share by
        user within priority lanes), with the position, the user, the lane and the ETA."""
        if not self.has_view_permission(request):
            return redirect("admin:index")
        queued = Generation.objects.filter(status=Generation.Status.QUEUED).select_related(
            "owner", "source"
        )
        queues: dict[str, list] = {}
        seen = set()
        for job in queued.order_by("created_at"):
            if job.pk in seen:
                continue
            order = scheduler.generation_queue(generation=job)
            seen |= {j.pk for j in order}
            name = job.model_name if scheduler.generation_in_model_queue(job) else "inference"
            queues[name] = [
                {
                    "position": position,
                    "job": queued_job,
                    "eta": scheduler.generation_eta_seconds(generation=queued_job),
                    "waited": (timezone.now() - queued_job.created_at).total_seconds(),
                }
                for position, queued_job in enumerate(order, start=1)
            ]
        context = {
            **self.admin_site.each_context(request),
            "title": "The queue",
            "opts": self.model._meta,
            "queues": queues,
        }
        return TemplateResponse(request, "admin/inpainting/generation/queue.html", context)

    @admin.action(description="Move the selected queued jobs to the front", permissions=["change"])
    def move_to_front(self, request, queryset) -> None:
        moved = [generations.generation_move(generation=g, front=True) for g in queryset]
        count = sum(priority is not None for priority in moved)
        self.message_user(request, f"{count} queued job(s) moved to the front.", messages.SUCCESS)

    @admin.action(description="Move the selected queued jobs to the back", permissions=["change"])
    def move_to_back(self, request, queryset) -> None:
        moved = [generations.generation_move(generation=g, front=False) for g in queryset]
        count = sum(priority is not None for priority in moved)
        self.message_user(request, f"{count} queued job(s) moved to the back.", messages.SUCCESS)

    @admin.action(description="Cancel selected generations", permissions=["change"])
    def cancel_selected(self, request, queryset) -> None:
        done = 0
        for generation in queryset.filter(status__in=Generation.ACTIVE):
            try:
                generations.generation_cancel(generation=generation)
                done += 1
            except ClientError:
                pass  # it finished meanwhile
        self.message_user(request, f"{done} generation(s) cancelled.", messages.SUCCESS)

    @admin.action(description="Re-run selected generations", permissions=["change"])
    def rerun_selected(self, request, queryset) -> None:
        done = 0
        for generation in queryset:
            try:
                generations.generation_rerun(generation=generation, user=generation.owner)
                done += 1
            except ClientError as exc:
                self.message_user(request, f"{generation.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} generation(s) queued again.", messages.SUCCESS)

    def delete_model(self, request, obj: Generation) -> None:
        generations.generation_delete(generation=obj)

    def delete_queryset(self, request, queryset) -> None:
        for generation in queryset:
            generations.generation_delete(generation=generation)


@admin.register(LibraryModel)
class LibraryModelAdmin(admin.ModelAdmin):
    """The model library: staff enable, disable and choose the default; the scan
    (``manage.py models scan``) adds and updates rows, so nothing else is edited here."""

    list_display = (
        "name",
        "kind",
        "family",
        "inpainting",
        "layout",
        "size",
        "gpu_memory",
        "licence_shown",
        "enabled",
        "is_default",
        "present",
    )
    list_filter = ("kind", "family", "inpainting", "enabled", "present", "layout")
    search_fields = ("name", "sha256")
    actions = ["enable_selected", "disable_selected", "make_default"]
    readonly_fields = (
        "kind",
        "name",
        "path",
        "family",
        "inpainting",
        "layout",
        "size_bytes",
        "sha256",
        "modified",
        "details",
        "is_default",
        "present",
        "scanned_at",
        "licence",
        "source",
        "memory_plans",
    )

    def has_add_permission(self, request) -> bool:
        return False  # models come from the scan or an install

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """The memory plan as a list of the engine's plans (the field keeps no choices: a new
        plan needs no migration)."""
        if db_field.name == "memory_plan":
            return forms.TypedChoiceField(
                choices=[("", "(MODEL_MEMORY_PLAN)")] + [(plan, plan) for plan in MEMORY_PLANS],
                required=False,
                label=db_field.verbose_name.capitalize(),
                help_text=db_field.help_text,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="GPU memory")
    def gpu_memory(self, obj: LibraryModel) -> str:
        """All on the GPU, and the least any plan needs short of sequential offload."""
        needs = library.library_model_memory(obj)
        return library.memory_words(needs) if needs else "-"

    @admin.display(description="GPU memory by memory plan")
    def memory_plans(self, obj: LibraryModel) -> str:
        needs = library.library_model_memory(obj)
        if not needs:
            return "-"
        return ", ".join(f"{plan}: {gb:g} GB" for plan, gb in needs.items())

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: LibraryModel) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="licence", ordering="licence")
    def licence_shown(self, obj: LibraryModel) -> str:
        licence = licences.model_licence(obj)
        if licence is None:
            return "-"
        return f"{licence.name} (non-commercial)" if licence.commercial is False else licence.name

    # Deleting a model (the change page's Delete, the "Delete selected" action) deletes its
    # files too: a row without its files would come back at the next scan.
    def delete_model(self, request, obj: LibraryModel) -> None:
        library.library_model_remove(model=obj)

    def delete_queryset(self, request, queryset) -> None:
        for model in queryset:
            library.library_model_remove(model=model)

    # Every staff member sees the library; changing it needs the model's change permission.
    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    @admin.action(description="Enable the selected models", permissions=["change"])
    def enable_selected(self, request, queryset):
        count = queryset.update(enabled=True)
        self.message_user(request, f"{count} model(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable the selected models", permissions=["change"])
    def disable_selected(self, request, queryset):
        if queryset.filter(is_default=True).exists():
            self.message_user(
                request,
                "The default model cannot be disabled; make another one the default first.",
                messages.ERROR,
            )
            return
        count = queryset.update(enabled=False)
        self.message_user(request, f"{count} model(s) disabled.", messages.SUCCESS)

    @admin.action(description="Make the selected model the default", permissions=["change"])
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model.", messages.ERROR)
            return
        model = queryset.get()
        try:
            library.library_model_set_default(model=model)
        except ClientError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{model.name} is the default model now.", messages.SUCCESS)


@admin.register(ModelInstall)
class ModelInstallAdmin(admin.ModelAdmin):
    """Installing models: the starter list with one button each, an install by repo id or URL,
    the installs with their progress (live, from the websocket), cancel, the Hugging Face
    token (set, never shown), the disk the library uses. Every staff member sees it; installing,
    cancelling and the token need the install permission (``installs.may_install``)."""

    change_list_template = "admin/inpainting/modelinstall/installs.html"

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request) -> bool:
        return False  # through the page's forms, not the add form

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        own = [
            path("install/", self.admin_site.admin_view(self.install_view), name="model_install"),
            path("token/", self.admin_site.admin_view(self.token_view), name="model_hub_token"),
            path(
                "<uuid:pk>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="model_install_cancel",
            ),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            return super().changelist_view(request, extra_context)
        present = LibraryModel.objects.filter(present=True)
        installed = {(m.kind, m.name) for m in present}
        starters = []
        here = installs.install_here()
        for starter in installs.install_starters_described():
            starter["here"] = installs.starter_fits(starter, here)
            starter["installed"] = (
                lama_file().is_file()
                if starter["kind"] == LAMA
                else (starter["kind"], starter["name"]) in installed
            )
            starters.append(starter)
        disk = present.values("kind").annotate(total=Sum("size_bytes")).order_by("kind")
        context = {
            **self.admin_site.each_context(request),
            "title": "Model installs",
            "opts": self.model._meta,
            "starters": starters,
            "here": here,
            "installs": [installs.install_describe(i) for i in installs.installs_recent()],
            "kinds": INSTALL_KINDS,
            "token": installs.hub_token_source(),
            "may_install": installs.may_install(request.user),
            "disk": [
                {"kind": LibraryModel.Kind(row["kind"]).label, "total": row["total"]}
                for row in disk
            ],
            "disk_total": sum(row["total"] for row in disk),
            "library_url": reverse("admin:inpainting_librarymodel_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.change_list_template, context)

    def _back(self):
        return redirect("admin:inpainting_modelinstall_changelist")

    @staticmethod
    def _staff(request) -> bool:
        """Whether the page's forms may act (install, cancel, set the token): a POST from
        staff without the install permission is a 403."""
        if request.method == "POST" and not installs.may_install(request.user):
            raise PermissionDenied("Installing models needs the install permission.")
        return installs.may_install(request.user)

    def install_view(self, request):
        if request.method != "POST" or not self._staff(request):
            return self._back()
        try:
            install = installs.install_create(
                user=request.user,
                source=request.POST.get("source", ""),
                kind=request.POST.get("kind", ""),
                revision=request.POST.get("revision", ""),
                subfolder=request.POST.get("subfolder", ""),
                name=request.POST.get("name", ""),
            )
        except ClientError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            # Queued, not done: its row below says how it goes (a failure there is its one word).
            self.message_user(
                request, f"{install.name}: install queued; its progress is below.", messages.INFO
            )
        return self._back()

    def token_view(self, request):
        if request.method == "POST" and self._staff(request):
            installs.hub_token_set(token=request.POST.get("token", ""))
            source = installs.hub_token_source()
            self.message_user(
                request,
                "Hugging Face token saved." if source == "the admin" else "Token removed.",
                messages.SUCCESS,
            )
        return self._back()

    def cancel_view(self, request, pk):
        if request.method == "POST" and self._staff(request):
            install = get_object_or_404(ModelInstall, pk=pk)
            if installs.install_cancel(install=install):
                self.message_user(request, f"{install.name}: cancelled.", messages.SUCCESS)
            else:
                self.message_user(request, f"{install.name} had ended.", messages.WARNING)
        return self._back()


@admin.register(GroupAccess)
class GroupAccessAdmin(admin.ModelAdmin):
    """What each group's members may see and run (issue 82): a kind open to them, or the
    entries listed. A user in no group with an access here may use everything."""

    list_display = ("group", "open_kinds", "listed")
    filter_horizontal = ("entries",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("entries")

    @admin.display(description="entries listed")
    def listed(self, access: GroupAccess) -> str:
        return ", ".join(entry.name for entry in access.entries.all()) or "none"

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "entries":  # the kinds staff give access to (ACCESS_KINDS)
            kwargs["queryset"] = LibraryModel.objects.filter(kind__in=ACCESS_KINDS)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(UsageQuota)
class UsageQuotaAdmin(admin.ModelAdmin):
    """How much a user, or each member of a group, may run an hour or a day (issue 82)."""

    list_display = ("__str__", "user", "group", "window", "jobs", "gpu_seconds")
    list_filter = ("window",)
    autocomplete_fields = ("user",)


#: The windows the usage pages of the admin sum over.
USAGE_WINDOWS = {"day": timedelta(days=1), "month": timedelta(days=30)}


def _usage(generations: str) -> dict:
    """Annotations of jobs and GPU-seconds (inference time) over ``USAGE_WINDOWS``, through the
    relation ``generations`` (a user's, or a group's members')."""
    now = timezone.now()
    annotations = {}
    for name, span in USAGE_WINDOWS.items():
        recent = Q(**{f"{generations}__created_at__gte": now - span})
        annotations[f"jobs_{name}"] = Count(generations, filter=recent)
        annotations[f"gpu_{name}"] = Sum(f"{generations}__inference_seconds", filter=recent)
    return annotations


class _UsageAdmin(admin.ModelAdmin):
    """A read-only list of usage, each column sortable (issue 82)."""

    relation = "generations"
    list_display_links = None

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**_usage(self.relation))

    def has_module_permission(self, request) -> bool:  # every staff member reviews usage
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="jobs, last day", ordering="jobs_day")
    def jobs_day(self, row) -> int:
        return row.jobs_day

    @admin.display(description="GPU-seconds, last day", ordering="gpu_day")
    def gpu_day(self, row) -> str:
        return f"{row.gpu_day or 0:.1f}"

    @admin.display(description="jobs, last 30 days", ordering="jobs_month")
    def jobs_month(self, row) -> int:
        return row.jobs_month

    @admin.display(description="GPU-seconds, last 30 days", ordering="gpu_month")
    def gpu_month(self, row) -> str:
        return f"{row.gpu_month or 0:.1f}"


@admin.register(UserUsage)
class UserUsageAdmin(_UsageAdmin):
    list_display = ("username", "jobs_day", "gpu_day", "jobs_month", "gpu_month", "stored")
    search_fields = ("username",)
    list_filter = ("groups",)

    @admin.display(description="stored")
    def stored(self, user) -> str:
        return filesizeformat(stored_bytes(user_id=user.pk))


@admin.register(GroupUsage)
class GroupUsageAdmin(_UsageAdmin):
    relation = "user__generations"
    list_display = ("name", "jobs_day", "gpu_day", "jobs_month", "gpu_month")
    search_fields = ("name",)
