"""This app's routes under /api/v1/ (no trailing slashes)."""

from __future__ import annotations

from django.urls import path

from memories_app.api import views

urlpatterns = [
    path("memories", views.MemoryCollectionView.as_view(), name="memories"),
    path("memories/batch", views.MemoryBatchView.as_view(), name="memories-batch"),
    path("memories/search", views.MemorySearchView.as_view(), name="memories-search"),
    path("memories/<str:memory_id>", views.MemoryDetailView.as_view(), name="memory"),
    path("memories/<str:memory_id>/history", views.MemoryHistoryView.as_view(), name="memory-history"),
    path("sessions/<str:session_id>/recall", views.RecallView.as_view(), name="session-recall"),
    path("sessions/<str:session_id>/promote", views.PromoteView.as_view(), name="session-promote"),
    path("promotions/<str:job_id>", views.PromotionJobView.as_view(), name="promotion"),
    path("users/<str:user_id>/profile", views.ProfileView.as_view(), name="user-profile"),
]
