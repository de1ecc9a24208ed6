from django.urls import path

from . import modelslab, sd_inpaint

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
]
