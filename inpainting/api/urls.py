from django.urls import path
from rest_framework.routers import SimpleRouter

from ..services import pictures
from . import installs, views

app_name = "api"

router = SimpleRouter()
router.register("generations", views.GenerationViewSet, basename="generation")

urlpatterns = [
    path("img2img", views.Img2ImgView.as_view(), name="img2img"),
    path("upscale", views.UpscaleView.as_view(), name="upscale"),
    path("upscalers", views.UpscalerListView.as_view(), name="upscalers"),
    path("health", views.HealthView.as_view(), name="health"),
    path("schedulers", views.SchedulerListView.as_view(), name="schedulers"),
    path("models", views.ModelListView.as_view(), name="models"),
    path("usage", views.UsageView.as_view(), name="usage"),
    path("models/installs", installs.InstallListView.as_view(), name="model-installs"),
    path("models/installs/<uuid:pk>", installs.InstallDetailView.as_view(), name="model-install"),
    path("loras", views.LoraListView.as_view(), name="loras"),
    path("controlnets", views.ControlNetListView.as_view(), name="controlnets"),
    path("ip-adapters", views.IpAdapterListView.as_view(), name="ip-adapters"),
    path("mask-models", views.MaskModelListView.as_view(), name="mask-models"),
    path("masks/generate", views.MaskGenerateView.as_view(), name="mask-generate"),
    path("masks/effective", views.MaskPreviewView.as_view(), name="mask-effective"),
    path("images/png", views.ImagePngView.as_view(), name="image-png"),
    path("projects/open", views.ProjectOpenView.as_view(), name="project-open"),
    path("layers/split", views.SplitView.as_view(), name="layers-split"),
    path("layer-models", views.LayerModelListView.as_view(), name="layer-models"),
    path("links/<str:token>", views.ImageLinkView.as_view(), name="image-link"),
    path(
        "generations/<uuid:pk>/images/<int:index>.png",
        views.GenerationFileView.as_view(),
        name="generation-image",
    ),
    *(
        path(
            f"generations/<uuid:pk>/{part}.png",
            views.GenerationFileView.as_view(part=part),
            name=f"generation-{part}",
        )
        for part in pictures.NAMED_PARTS
    ),
    path(
        "generations/<uuid:pk>/layers/<int:layer>.png",
        views.GenerationFileView.as_view(),
        name="generation-layer",
    ),
    path(
        "generations/<uuid:pk>/thumbnails/<str:part>.webp",
        views.GenerationFileView.as_view(thumbnail=True),
        name="generation-thumbnail",
    ),
    *router.urls,
]
