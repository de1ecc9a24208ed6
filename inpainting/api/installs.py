"""``/api/models/installs``: staff install models (a starter list key, a Hugging Face repo id
or file URL, a plain URL) as jobs of the housekeeping worker, follow their progress, cancel
them. Ordinary users see only what is installed (``GET /api/models`` and the other lists)."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..errors import ClientError
from ..models import INSTALL_KINDS, ModelInstall
from ..services import installs
from .serializers import validated


class InstallRequestSerializer(serializers.Serializer):
    source = serializers.CharField(
        max_length=2000,
        help_text="A starter list key, a Hugging Face repo id (org/name), a hub file URL "
        "(…/org/name/resolve/main/file.safetensors) or an https URL to a .safetensors file.",
    )
    kind = serializers.ChoiceField(
        choices=[kind for kind, _ in INSTALL_KINDS],
        required=False,
        help_text="What it is (default: the starter entry's, else a diffusion model).",
    )
    revision = serializers.CharField(max_length=255, required=False, default="")
    subfolder = serializers.CharField(max_length=255, required=False, default="")
    name = serializers.CharField(
        max_length=200, required=False, default="", help_text="Its name in the library."
    )


_INSTALL = inline_serializer(
    "ModelInstall",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(choices=ModelInstall.Status.choices),
        "bytes_done": serializers.IntegerField(),
        "bytes_total": serializers.IntegerField(allow_null=True),
        "error": serializers.CharField(allow_null=True),
    },
)


class MayInstall(IsAdminUser):
    """Staff read the installs; installing, cancelling and the token need the install
    permission (``services.installs.may_install``)."""

    message = "Installing models needs the install permission (add model install), not staff alone."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        return request.method in SAFE_METHODS or installs.may_install(request.user)


class InstallListView(APIView):
    """``GET``: the recent installs, the starter list (sizes, licences, VRAM, whether this
    deployment allows each) and where the Hugging Face token comes from (never the token).
    ``POST``: start an install (202; its progress also comes on the websocket
    ``/ws/generations/`` as ``{"type": "install", ...}`` events)."""

    permission_classes = [MayInstall]

    @extend_schema(
        operation_id="api_models_installs_list",
        responses=inline_serializer(
            "ModelInstalls",
            {
                "installs": serializers.ListField(child=serializers.DictField()),
                "starters": serializers.ListField(child=serializers.DictField()),
                "token": serializers.CharField(allow_null=True),
                "allow_noncommercial": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "installs": [installs.install_describe(i) for i in installs.installs_recent()],
                "starters": installs.install_starters_described(),
                "token": installs.hub_token_source(),
                "allow_noncommercial": settings.ALLOW_NONCOMMERCIAL_MODELS,
            }
        )

    @extend_schema(request=InstallRequestSerializer, responses={202: _INSTALL})
    def post(self, request: Request) -> Response:
        data = validated(InstallRequestSerializer, request.data)
        install = installs.install_create(user=request.user, **data)
        return Response(installs.install_describe(install), status=status.HTTP_202_ACCEPTED)


class InstallDetailView(APIView):
    """``GET``: one install's progress. ``DELETE``: cancel it (what it downloaded is deleted;
    409 once it has ended)."""

    permission_classes = [MayInstall]

    def _install(self, pk) -> ModelInstall:
        install = ModelInstall.objects.filter(pk=pk).first()
        if install is None:
            raise Http404("No such install.")
        return install

    @extend_schema(responses=_INSTALL)
    def get(self, request: Request, pk) -> Response:
        return Response(installs.install_describe(self._install(pk)))

    @extend_schema(responses=_INSTALL)
    def delete(self, request: Request, pk) -> Response:
        install = self._install(pk)
        if not installs.install_cancel(install=install):
            raise ClientError(f"The install has ended ({install.status}).", status=409)
        return Response(installs.install_describe(install))
