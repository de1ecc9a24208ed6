"""ASGI entry point: HTTP through Django, websockets through Channels (daphne serves both)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dreamlayer_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.websocket import ApiKeyAuthMiddleware, origin_checked  # noqa: E402
from dreamlayer_site import urls  # noqa: E402, F401 - imported now, to be frozen below
from dreamlayer_site.startup import freeze_startup_objects  # noqa: E402
from inpainting.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": origin_checked(
            AuthMiddlewareStack(ApiKeyAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
freeze_startup_objects()
