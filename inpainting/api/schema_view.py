"""``GET /api/schema/``: drf-spectacular's schema view, its document built once a minute per
process, not per request (anyone may read it: building it walks every view and serializer,
0.2-0.3 s of the web process' CPU a request)."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response

#: How long a built schema is served before it is built again (the model lists it names may
#: change while the server runs).
SCHEMA_SECONDS = 60.0


class CachedSchemaView(SpectacularAPIView):
    _built: dict[tuple, tuple[float, dict]] = {}
    _lock = threading.Lock()

    def _get_schema_response(self, request) -> Response:
        # No API versions here; a language only from LANGUAGES: a client's made-up values
        # neither build a schema of their own nor stay in the cache (at most one a language).
        version = None
        lang = request.GET.get("lang")
        key = (version, lang if lang in dict(settings.LANGUAGES) else None)
        with self._lock:
            built = self._built.get(key)
            if built is None or time.monotonic() - built[0] > SCHEMA_SECONDS:
                generator = self.generator_class(
                    urlconf=self.urlconf, api_version=version, patterns=self.patterns
                )
                built = (
                    time.monotonic(),
                    generator.get_schema(request=request, public=self.serve_public),
                )
                self._built[key] = built
        filename = self._get_filename(request, version)
        return Response(
            data=built[1], headers={"Content-Disposition": f'inline; filename="{filename}"'}
        )
