"""This app's routes under /api/v1/ (no trailing slashes)."""

from __future__ import annotations

from django.urls import path

from checkpoints_app.api import views

_BASE = "sessions/<str:session_id>/checkpoints"

urlpatterns = [
    path(_BASE, views.CheckpointListView.as_view(), name="checkpoint-list"),
    path(f"{_BASE}/latest", views.LatestCheckpointView.as_view(), name="checkpoint-latest"),
    path(f"{_BASE}/diff", views.CheckpointDiffView.as_view(), name="checkpoint-diff"),
    path(f"{_BASE}/verify", views.CheckpointVerifyView.as_view(), name="checkpoint-verify"),
    path(f"{_BASE}/by-sequence/<int:sequence>", views.CheckpointBySequenceView.as_view(), name="checkpoint-sequence"),
    path(f"{_BASE}/<uuid:checkpoint_id>", views.CheckpointDetailView.as_view(), name="checkpoint-detail"),
]
