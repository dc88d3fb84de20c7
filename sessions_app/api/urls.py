"""Sessions, hot context, tool state, events, state and the operation journal under /api/v1/."""

from __future__ import annotations

from django.urls import path

from sessions_app.api import views

_session = "sessions/<str:session_id>"

urlpatterns = [
    path("sessions", views.SessionListView.as_view(), name="session-list"),
    path(_session, views.SessionDetailView.as_view(), name="session-detail"),
    path(f"{_session}/context", views.ContextView.as_view(), name="session-context"),
    path(f"{_session}/context/messages", views.ContextMessagesView.as_view(), name="session-context-messages"),
    path(f"{_session}/tools", views.ToolListView.as_view(), name="session-tools"),
    path(f"{_session}/tools/<str:tool>", views.ToolStateView.as_view(), name="session-tool"),
    path(f"{_session}/events", views.EventListView.as_view(), name="session-events"),
    path(f"{_session}/state", views.StateView.as_view(), name="session-state"),
    path(f"{_session}/operations", views.OperationListView.as_view(), name="session-operations"),
    path(f"{_session}/operations/<uuid:operation_id>", views.OperationDetailView.as_view(), name="session-operation"),
    path(
        f"{_session}/operations/<uuid:operation_id>/complete",
        views.OperationCompleteView.as_view(),
        name="session-operation-complete",
    ),
    path(
        f"{_session}/operations/<uuid:operation_id>/fail",
        views.OperationFailView.as_view(),
        name="session-operation-fail",
    ),
]
