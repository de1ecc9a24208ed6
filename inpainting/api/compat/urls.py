from django.urls import path

from . import deepimage, fooocus, modelslab, sd_inpaint

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
]
