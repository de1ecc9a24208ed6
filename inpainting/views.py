"""Server-rendered pages (the full studio arrives with the browser issue)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotFound
from django.shortcuts import render

from .api.errors import json_not_found
from .conf import engine_config
from .selectors import generation_list


@login_required
def home(request):
    config = engine_config()
    context = {
        "engine": config.default(),
        "model": config.model_name(config.default()),
        "recent": generation_list(user=request.user)[:12],
    }
    return render(request, "inpainting/home.html", context)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_not_found(request, exception)
    return HttpResponseNotFound(render(request, "404.html").content)
