from django.urls import path

from . import deepimage, fooocus, modelslab, openai, sd_inpaint
from .a1111 import extras as a1111_extras
from .a1111 import img2img as a1111_img2img
from .a1111 import lists as a1111_lists
from .a1111 import status as a1111_status

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
    # FooocusAPI
    path("v1/engine/generate", fooocus.FooocusGenerateView.as_view(), name="fooocus-generate"),
    path("tasks/<uuid:task_id>", fooocus.FooocusTaskView.as_view(), name="fooocus-task"),
    path(
        "v1/tools/generate_mask",
        fooocus.FooocusGenerateMaskView.as_view(),
        name="fooocus-generate-mask",
    ),
    # deep-image.ai
    path(
        "rest_api/process_result", deepimage.ProcessResultView.as_view(), name="deepimage-process"
    ),
    path("rest_api/result/<uuid:job>", deepimage.ResultView.as_view(), name="deepimage-result"),
    # AUTOMATIC1111 web UI
    path("sdapi/v1/img2img", a1111_img2img.A1111Img2ImgView.as_view(), name="a1111-img2img"),
    path("sdapi/v1/progress", a1111_status.A1111ProgressView.as_view(), name="a1111-progress"),
    path("sdapi/v1/interrupt", a1111_status.A1111InterruptView.as_view(), name="a1111-interrupt"),
    path("sdapi/v1/skip", a1111_status.A1111InterruptView.as_view(), name="a1111-skip"),
    path("sdapi/v1/sd-models", a1111_lists.A1111SdModelsView.as_view(), name="a1111-sd-models"),
    path("sdapi/v1/samplers", a1111_lists.A1111SamplersView.as_view(), name="a1111-samplers"),
    path("sdapi/v1/schedulers", a1111_lists.A1111SchedulersView.as_view(), name="a1111-schedulers"),
    path("sdapi/v1/options", a1111_lists.A1111OptionsView.as_view(), name="a1111-options"),
    # openOutpaint switches the model with a POST to "options/" (APPEND_SLASH adds, never drops);
    # the same view, left out of the schema (it documents the route without the slash)
    path(
        "sdapi/v1/options/",
        a1111_lists.A1111OptionsView.as_view(schema=None),
        name="a1111-options-slash",
    ),
    path("sdapi/v1/scripts", a1111_lists.A1111ScriptsView.as_view(), name="a1111-scripts"),
    path("sdapi/v1/png-info", a1111_extras.A1111PngInfoView.as_view(), name="a1111-png-info"),
    # ... and what A1111 clients call at start-up (openOutpaint, GIMP and Krita plugins, SDAI)
    path("sdapi/v1/upscalers", a1111_lists.A1111UpscalersView.as_view(), name="a1111-upscalers"),
    path(
        "sdapi/v1/realesrgan-models",
        a1111_lists.A1111RealEsrganModelsView.as_view(),
        name="a1111-realesrgan-models",
    ),
    path(
        "sdapi/v1/extra-single-image",
        a1111_extras.A1111ExtraSingleImageView.as_view(),
        name="a1111-extra-single-image",
    ),
    path(
        "sdapi/v1/extra-batch-images",
        a1111_extras.A1111ExtraBatchImagesView.as_view(),
        name="a1111-extra-batch-images",
    ),
    path("sdapi/v1/loras", a1111_lists.A1111LorasView.as_view(), name="a1111-loras"),
    path("sdapi/v1/memory", a1111_status.A1111MemoryView.as_view(), name="a1111-memory"),
    *(
        path(
            f"sdapi/v1/{name}", a1111_lists.A1111FixedView.as_view(body=body), name=f"a1111-{name}"
        )
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
        path(f"sdapi/v1/{name}", a1111_lists.A1111RefreshView.as_view(), name=f"a1111-{name}")
        for name in ("refresh-checkpoints", "refresh-loras", "refresh-vae")
    ),
    path(
        "controlnet/version", a1111_lists.ControlNetVersionView.as_view(), name="controlnet-version"
    ),
    path(
        "controlnet/model_list",
        a1111_lists.ControlNetModelListView.as_view(),
        name="controlnet-model-list",
    ),
    path(
        "controlnet/module_list",
        a1111_lists.ControlNetModuleListView.as_view(),
        name="controlnet-module-list",
    ),
    path(
        "controlnet/settings",
        a1111_lists.ControlNetSettingsView.as_view(),
        name="controlnet-settings",
    ),
    path("queue/status", a1111_status.QueueStatusView.as_view(), name="queue-status"),
    # OpenAI image edits
    path("v1/images/edits", openai.OpenAIImageEditView.as_view(), name="openai-image-edit"),
    path(
        "v1/images/files/<str:token>",
        openai.OpenAIImageFileView.as_view(),
        name="openai-image-file",
    ),
]
