"""What the API answers to OPTIONS (REST_FRAMEWORK's DEFAULT_METADATA_CLASS).

Its own module: DRF reads the setting while it defines APIView, so the class must not need views to import.
"""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request


class ApiMetadata(SimpleMetadata):
    """What OPTIONS answers: the view's name, description, and the media types it renders and parses. Not DRF's
    guess at each method's fields from a serializer: that would read the resource (`get_object`, which views
    scoped to a tenant do not use) and the bodies are documented in the OpenAPI schema anyway."""

    def determine_metadata(self, request: Request, view: Any) -> dict[str, Any]:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }
