"""This app's routes under /api/v1/ (no trailing slashes)."""

from __future__ import annotations

from django.urls import path

from langgraph_app.api import views

# A thread is a session: its id is the session id (so the generic API suites fill it like any session id).
_thread = "langgraph/threads/<str:session_id>"

urlpatterns = [
    path(_thread, views.ThreadView.as_view(), name="langgraph-thread"),
    path(f"{_thread}/checkpoints", views.ThreadCheckpointsView.as_view(), name="langgraph-checkpoints"),
    path(f"{_thread}/writes", views.ThreadWritesView.as_view(), name="langgraph-writes"),
    path(f"{_thread}/saves", views.ThreadSavesView.as_view(), name="langgraph-saves"),
    path(f"{_thread}/copy", views.ThreadCopyView.as_view(), name="langgraph-copy"),
    path("langgraph/checkpoints", views.CheckpointsView.as_view(), name="langgraph-tenant-checkpoints"),
    path("langgraph/prune", views.PruneView.as_view(), name="langgraph-prune"),
    path("langgraph/delete-for-runs", views.DeleteForRunsView.as_view(), name="langgraph-delete-for-runs"),
    path("langgraph/store/batch", views.StoreBatchView.as_view(), name="langgraph-store-batch"),
]
