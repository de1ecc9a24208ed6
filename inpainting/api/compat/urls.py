from django.urls import path

from . import fooocus, modelslab, sd_inpaint

urlpatterns = [
    path("sd-inpaint/inpaint", sd_inpaint.SdInpaintView.as_view(), name="sd-inpaint"),
    path("sd-inpaint/health", sd_inpaint.SdInpaintHealthView.as_view(), name="sd-inpaint-health"),
    path(
        "api/v6/images/inpaint", modelslab.ModelsLabInpaintView.as_view(), name="modelslab-inpaint"
    ),
    path(
        "api/v6/images/fetch/<uuid:generation_id>",
        modelslab.ModelsLabFetchView.as_view(),
        name="modelslab-fetch",
    ),
    path("v1/engine/generate", fooocus.FooocusGenerateView.as_view(), name="fooocus-generate"),
    path("tasks/<uuid:task_id>", fooocus.FooocusTaskView.as_view(), name="fooocus-task"),
    path(
        "v1/tools/generate_mask",
        fooocus.FooocusGenerateMaskView.as_view(),
        name="fooocus-generate-mask",
    ),
]
