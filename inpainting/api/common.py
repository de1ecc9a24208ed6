"""What every API view shares: the base URL, the key a request used, the one way to submit a
job, wait for it and answer (``SubmitAndWaitView``), and URL / base64 inputs as uploads."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from adrf.views import APIView as AsyncAPIView
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiKey

from .. import selectors
from ..answers import native
from ..models import Generation
from ..remote import image_input_bytes
from ..services import generations
from ..waiting import wait_until_finished
from .parsers import JSONParser


def base_url(request) -> str:
    return request.build_absolute_uri("/")


def api_key_of(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def idempotency_key_of(request: Request) -> str | None:
    return request.headers.get("Idempotency-Key") or None


def native_client(api_key: ApiKey | None) -> str:
    """Who sent a native API job: a key is a script or another service, a browser session
    the studio."""
    return Generation.Client.API if api_key else Generation.Client.WEB


#: The header the studio page sends its token in (``generations.studio_token``).
STUDIO_HEADER = "X-DreamLayer-Studio"


def sender(request: Request, client: str = "") -> generations.Sender:
    """Who sends a job, as the services take it: ``request``'s user, the key it used, its
    ``Idempotency-Key`` and the API ``client`` (the native API leaves it out: its credentials
    tell)."""
    api_key = api_key_of(request)
    token = request.headers.get(STUDIO_HEADER, "")
    return generations.Sender(
        user=request.user,
        client=client or native_client(api_key),
        api_key=api_key,
        idempotency_key=idempotency_key_of(request),
        # The studio page's own jobs (its token, with the session): the studio lane.
        interactive=api_key is None
        and bool(token)
        and generations.studio_token_valid(token, request.user, request.session.session_key),
    )


def generation_create_for(
    request: Request, client: str, image_file, mask_file, params, **fields
) -> Generation:
    """A job from ``request``'s ``sender`` through ``client``'s API (empty: the native one),
    of ``image_file``, ``mask_file`` (None: none sent) and ``params``
    (``generations.generation_create``'s other ``fields``). A compatible API's inpaint with no
    prompt runs in erase mode where the server says so (ERASE_WITHOUT_PROMPT)."""
    native = client in ("", Generation.Client.API, Generation.Client.WEB)
    if settings.ERASE_WITHOUT_PROMPT and not native and not params.prompt.strip():
        if mask_file is not None and not params.outpaint:
            params = replace(params, mode="erase")
    return generations.generation_create(
        sender(request, client), image_file=image_file, mask_file=mask_file, params=params, **fields
    ).generation


def get_generation_or_404(request: Request, generation_id, change: bool = False) -> Generation:
    generation = selectors.generation_get(
        user=request.user, generation_id=generation_id, change=change
    )
    if generation is None:
        raise Http404("No such generation.")
    return generation


def remote_upload(value: str, field: str) -> SimpleUploadedFile:
    """An image given as a URL, a data URL or base64, as an upload the services read like a
    file (``RemoteInputError``, a 400 on ``field``, when it cannot be had)."""
    return SimpleUploadedFile(field, image_input_bytes(value, field=field))


@dataclass
class Submitted:
    generation: Generation
    wait: bool = True
    context: Any = None  # what the answer needs from the request (e.g. ModelsLab's base64)


class SubmitAndWaitView(AsyncAPIView):
    """``POST``: parse and validate the body with ``input_serializer``, submit (a thread), wait
    for the job's end unless the client asked not to (on the channel layer, no thread held),
    answer (a thread). Subclasses name their serializer and write ``submit`` and ``answer``;
    a job deleted while the client waited is a 404."""

    input_serializer: type[serializers.Serializer]
    #: Its clients block for the images (no 202): at the wait limit it answers a 504.
    blocking = False
    parser_classes = [JSONParser]  # the compatible APIs take JSON; the multipart ones say so

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return self.input_serializer  # the OpenAPI request body, too

    def input_data(self, request: Request) -> Any:
        return request.data

    def submit(self, request: Request, serializer) -> Submitted:
        """Create the job from the valid ``serializer`` (an ``input_serializer``)."""
        raise NotImplementedError

    def _submit(self, request: Request) -> Submitted:
        serializer = self.input_serializer(
            data=self.input_data(request), context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        return self.submit(request, serializer)

    def answer(self, request: Request, generation: Generation, context: Any):
        raise NotImplementedError

    def _answer(self, request: Request, submitted: Submitted):
        generation = selectors.generation_get(
            user=request.user, generation_id=submitted.generation.pk
        )
        if generation is None:
            raise Http404(Generation.DELETED_ERROR)
        return self.answer(request, generation, submitted.context)

    async def post(self, request: Request, *args, **kwargs):
        return await self.finish(request, await sync_to_async(self._submit)(request))

    async def finish(self, request: Request, submitted: Submitted):
        """Wait for a submitted job's end (unless the client asked not to), then answer."""
        if submitted.wait and submitted.generation.status not in Generation.TERMINAL:
            await wait_until_finished(submitted.generation.pk, settings.IMG2IMG_WAIT_SECONDS)
        return await sync_to_async(self._answer)(request, submitted)


def unfinished(generation: Generation, *, blocking: bool) -> tuple[int, str] | None:
    """The status and message of a waited-on job that did not succeed: failed (422),
    cancelled (409), or still running after the wait limit: a 504 for the clients that block
    for the images (``blocking``; the job goes on), None for the others (they get a 202 and
    where to fetch it). A job being deleted never gets here (``selectors.generation_get``)."""
    if generation.status == Generation.Status.FAILED:
        return 422, generation.error
    if generation.status == Generation.Status.CANCELLED:
        return 409, "The generation was cancelled."
    if blocking and generation.status != Generation.Status.SUCCEEDED:
        return 504, (
            f"The generation is still running after {settings.IMG2IMG_WAIT_SECONDS:g} s "
            f"(IMG2IMG_WAIT_SECONDS); it goes on as {generation.pk} "
            f"(GET /api/generations/{generation.pk}/)."
        )
    return None


def unfinished_response(generation: Generation, base: str) -> Response:
    """The native answer for a waited-on job that did not succeed: failed (422), cancelled
    (409), or still running after the wait limit (202 with where to fetch it)."""
    problem = unfinished(generation, blocking=False)
    if problem is None:
        return Response(
            native.img2img_processing(generation, base), status=status.HTTP_202_ACCEPTED
        )
    code, message = problem
    body = {"status": "error", "id": str(generation.pk), "message": message, "errors": {}}
    return Response(body, status=code)
