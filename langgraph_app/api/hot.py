"""The LangGraph API's hot route (see memory_admin.api.hot): the checkpointer's one request per graph step.

`parse_saves` is the very parser the view uses; a body it refuses is handed to Django, which words the
refusal. The handler calls the same service as the view.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from langgraph_app import services
from langgraph_app.api.serializers import parse_saves
from langgraph_app.services import CheckpointSave, WritesSave
from memory_admin.api.hot.lane import Fallback, HotRequest, HotResponse, HotRoute, json_response


def parse(body: Any) -> tuple[list[CheckpointSave | WritesSave], str]:
    try:
        return parse_saves(body)
    except serializers.ValidationError:
        raise Fallback from None


def save(request: HotRequest, arguments: tuple[list[CheckpointSave | WritesSave], str]) -> HotResponse:
    saves, user_id = arguments
    checkpoints, writes = services.save_batch(
        tenant=request.tenant, thread_id=request.kwargs["session_id"], saves=saves, user_id=user_id
    )
    return json_response({"checkpoints": checkpoints, "writes": writes})


ROUTES = [HotRoute("POST", "/api/v1/langgraph/threads/{session_id}/saves", "api:langgraph-saves", parse, save)]
