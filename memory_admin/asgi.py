"""ASGI entry point: WebSockets for the dashboard's live updates (and plain HTTP, for ASGI-only deployments)."""

import json
import os
from typing import Any

from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")

django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from memory_admin.api.handler import ALIVE, PROBE_HEADERS  # noqa: E402
from memory_admin.health import readiness  # noqa: E402
from memory_admin.routing import websocket_urlpatterns  # noqa: E402


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django, but /healthz and /readyz are answered first, as the web server's WSGI handler answers them: the
    image's HEALTHCHECK (Host: 127.0.0.1) runs in the websockets container too, whatever ALLOWED_HOSTS says."""
    if scope["path"] not in ("/healthz", "/readyz") or scope["method"] not in ("GET", "HEAD"):
        await django_http(scope, receive, send)
        return
    if scope["path"] == "/healthz":
        status, body = 200, ALIVE
    else:
        status, layers = await sync_to_async(readiness, thread_sensitive=False)()
        body = json.dumps(layers).encode()
    headers = [(b"content-type", b"application/json"), *PROBE_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
