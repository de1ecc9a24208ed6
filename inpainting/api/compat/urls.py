from django.urls import path

from . import deepimage, fooocus, fooocus_api, modelslab, openai, sd_inpaint
from .a1111 import extras as a1111_extras
from .a1111 import img2img as a1111_img2img
from .a1111 import lists as a1111_lists
from .a1111 import status as a1111_status


def _a1111(route: str, view, name: str = "", **initkwargs):
    """An AUTOMATIC1111 route, ``sdapi/v1/<route>``, named ``a1111-<route>``."""
    return path(f"sdapi/v1/{route}", view.as_view(**initkwargs), name=name or f"a1111-{route}")


def _controlnet(route: str, view):
    """A route of A1111's ControlNet extension, ``controlnet/<route>``, named with hyphens."""
    return path(f"controlnet/{route}", view.as_view(), name=f"controlnet-{route.replace('_', '-')}")


urlpatterns = [
    # SD Inpainting API
    path("sd-inpaint/inpaint", sd_inpaint.SdInpaintView.as_view(), name="sd-inpaint"),
    path("sd-inpaint/health", sd_inpaint.SdInpaintHealthView.as_view(), name="sd-inpaint-health"),
    # ModelsLab v6
    path(
        "api/v6/images/inpaint", modelslab.ModelsLabInpaintView.as_view(), name="modelslab-inpaint"
    ),
    path(
        "api/v6/images/fetch/<uuid:generation_id>",
        modelslab.ModelsLabFetchView.as_view(),
        name="modelslab-fetch",
    ),
    # ... ModelsLab's editing and realtime routes, onto the same view, and their fetch
    *(
        path(
            f"api/v6/{route}",
            modelslab.ModelsLabInpaintView.as_view(input_serializer=serializer),
            name=f"modelslab-{route.replace('/', '-').replace('_', '-')}",
        )
        for route, serializer in (
            ("realtime/inpaint", modelslab.ModelsLabRealtimeInpaintSerializer),
            ("image_editing/inpaint", modelslab.ModelsLabEditingInpaintSerializer),
            ("image_editing/object_removal", modelslab.ModelsLabObjectRemovalSerializer),
            ("image_editing/outpaint", modelslab.ModelsLabOutpaintSerializer),
        )
    ),
    *(
        path(
            f"api/v6/{kind}/fetch/<uuid:generation_id>",
            modelslab.ModelsLabFetchView.as_view(),
            name=f"modelslab-{kind.replace('_', '-')}-fetch",
        )
        for kind in ("realtime", "image_editing")
    ),
    # FooocusAPI
    path("v1/engine/generate", fooocus.FooocusGenerateView.as_view(), name="fooocus-generate"),
    path("tasks/<uuid:task_id>", fooocus.FooocusTaskView.as_view(), name="fooocus-task"),
    path(
        "v1/tools/generate_mask",
        fooocus.FooocusGenerateMaskView.as_view(),
        name="fooocus-generate-mask",
    ),
    # Fooocus-API (konieshadow), the older Fooocus API: the same jobs, its names and answers
    path(
        "v1/generation/image-inpaint-outpaint",
        fooocus_api.FooocusApiFormInpaintView.as_view(),
        name="fooocus-api-inpaint-v1",
    ),
    path(
        "v2/generation/image-inpaint-outpaint",
        fooocus_api.FooocusApiInpaintView.as_view(),
        name="fooocus-api-inpaint-v2",
    ),
    path(
        "v1/generation/query-job",
        fooocus_api.FooocusApiQueryJobView.as_view(),
        name="fooocus-api-query-job",
    ),
    path("v1/generation/stop", fooocus_api.FooocusApiStopView.as_view(), name="fooocus-api-stop"),
    path(
        "v1/generation/job-queue",
        fooocus_api.FooocusApiJobQueueView.as_view(),
        name="fooocus-api-job-queue",
    ),
    path(
        "v1/engines/all-models",
        fooocus_api.FooocusApiAllModelsView.as_view(),
        name="fooocus-api-all-models",
    ),
    path("ping", fooocus_api.ping, name="fooocus-api-ping"),
    # deep-image.ai
    path(
        "rest_api/process_result", deepimage.ProcessResultView.as_view(), name="deepimage-process"
    ),
    path("rest_api/result/<uuid:job>", deepimage.ResultView.as_view(), name="deepimage-result"),
    # AUTOMATIC1111 web UI
    _a1111("img2img", a1111_img2img.A1111Img2ImgView),
    _a1111("txt2img", a1111_img2img.A1111Txt2ImgView),
    _a1111("progress", a1111_status.A1111ProgressView),
    _a1111("interrupt", a1111_status.A1111InterruptView),
    _a1111("skip", a1111_status.A1111InterruptView, skip=True),
    _a1111("sd-models", a1111_lists.A1111SdModelsView),
    _a1111("samplers", a1111_lists.A1111SamplersView),
    _a1111("schedulers", a1111_lists.A1111SchedulersView),
    _a1111("options", a1111_lists.A1111OptionsView),
    # openOutpaint switches the model with a POST to "options/" (APPEND_SLASH adds, never drops);
    # the same view, left out of the schema (it documents the route without the slash)
    _a1111("options/", a1111_lists.A1111OptionsView, "a1111-options-slash", schema=None),
    _a1111("scripts", a1111_lists.A1111ScriptsView),
    _a1111("png-info", a1111_extras.A1111PngInfoView),
    # ... and what A1111 clients call at start-up (openOutpaint, GIMP and Krita plugins, SDAI)
    _a1111("upscalers", a1111_lists.A1111UpscalersView),
    _a1111("realesrgan-models", a1111_lists.A1111RealEsrganModelsView),
    _a1111("extra-single-image", a1111_extras.A1111ExtraSingleImageView),
    _a1111("extra-batch-images", a1111_extras.A1111ExtraBatchImagesView),
    _a1111("loras", a1111_lists.A1111LorasView),
    _a1111("memory", a1111_status.A1111MemoryView),
    *(
        _a1111(name, a1111_lists.A1111FixedView, body=body)
        for name, body in (
            ("latent-upscale-modes", []),
            ("prompt-styles", []),
            ("sd-vae", []),
            ("sd-modules", []),
            ("embeddings", {"loaded": {}, "skipped": {}}),
            ("hypernetworks", []),
            ("face-restorers", []),
            ("extensions", []),
            ("script-info", []),
            ("cmd-flags", {"api": True, "nowebui": False, "lowvram": False, "medvram": False}),
        )
    ),
    *(
        _a1111(name, a1111_lists.A1111RefreshView)
        for name in ("refresh-checkpoints", "refresh-loras", "refresh-vae")
    ),
    # ... and the ControlNet extension's
    _controlnet("version", a1111_lists.ControlNetVersionView),
    _controlnet("model_list", a1111_lists.ControlNetModelListView),
    _controlnet("module_list", a1111_lists.ControlNetModuleListView),
    _controlnet("settings", a1111_lists.ControlNetSettingsView),
    path("queue/status", a1111_status.QueueStatusView.as_view(), name="queue-status"),
    # OpenAI image edits, and the models a request may name
    path("v1/models", openai.OpenAIModelsView.as_view(), name="openai-models"),
    path("v1/models/<str:model>", openai.OpenAIModelView.as_view(), name="openai-model"),
    path("v1/images/edits", openai.OpenAIImageEditView.as_view(), name="openai-image-edit"),
    path(
        "v1/images/generations",
        openai.OpenAIImageGenerationView.as_view(),
        name="openai-image-generation",
    ),
    path(
        "v1/images/files/<str:token>",
        openai.OpenAIImageFileView.as_view(),
        name="openai-image-file",
    ),
]
