"""The caller's jobs as A1111 reports them: ``progress``, ``interrupt`` / ``skip``, Gradio's
``queue/status``, and ``memory``."""

from __future__ import annotations

import os

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from .... import scheduler, selectors
from ....answers import a1111
from ....progress import latest_preview
from ....services import generations, images
from .base import TAGS, A1111View


class A1111ProgressView(A1111View):
    """The caller's current job (never another user's): ``current_image`` is its latest live
    preview (a diffusion model's, every 5 steps) unless ``skip_current_image`` is true."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="A1111 progress")})
    def get(self, request: Request) -> Response:
        generation, count = selectors.generation_current(user=request.user)
        skip = request.query_params.get("skip_current_image", "").lower() in ("true", "1")
        preview = latest_preview(generation.pk) if generation and not skip else None
        eta = scheduler.generation_eta_seconds(generation=generation) if generation else None
        return Response(
            a1111.progress(
                generation, job_count=count, eta=eta, current_image=images.preview_png(preview)
            )
        )


class A1111InterruptView(A1111View):
    """``interrupt``: the caller's current job stops, and the iterations of its request still
    to come (``n_iter``: one job each); ``skip`` (``skip=True``): only the current iteration,
    the next goes on. The waiting img2img request answers with the images finished before
    (A1111's 200, ``info.interrupted``)."""

    skip = False

    @extend_schema(tags=TAGS, request=None, responses={200: OpenApiResponse(description="{}")})
    def post(self, request: Request) -> Response:
        generations.generation_interrupt_sequence(user=request.user, skip=self.skip)
        return Response({})


class A1111MemoryView(A1111View):
    """The web process' machine's memory (A1111's ``ram``), for staff: the host's memory is
    the operator's business, not every user's. Others get A1111's own answer for memory it
    cannot read, ``{"ram": {"error": ...}}``; the GPUs are the workers'."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="memory")})
    def get(self, request: Request) -> Response:
        cuda = {"error": "the models run on the workers (GET /api/health)"}
        if not request.user.is_staff:
            return Response({"ram": {"error": "only staff see the server's memory"}, "cuda": cuda})
        page = os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * page
        free = os.sysconf("SC_AVPHYS_PAGES") * page
        return Response(
            {
                "ram": {"free": free, "used": total - free, "total": total},
                "cuda": cuda,
            }
        )


class QueueStatusView(A1111View):
    """Gradio's queue status, which Cyanic SD-Krita polls as its health check."""

    @extend_schema(tags=TAGS, responses={200: OpenApiResponse(description="queue")})
    def get(self, request: Request) -> Response:
        _, waiting = selectors.generation_current(user=request.user)
        return Response(a1111.queue_status(waiting))
