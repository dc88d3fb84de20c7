"""This app's routes under /api/v1/ (no trailing slashes)."""

from __future__ import annotations

from django.urls import path, register_converter

from memories_app.api import views


class PersonIdConverter:
    """A person's id as the API takes it (any characters, "/" and newlines too): a profile is addressed by the
    ids memories and sessions accept. The route's own suffix still ends the match: "users/a/profile/profile"
    is the profile of "a/profile"."""

    # Any character, newlines included, in a form the OpenAPI schema's (ECMAScript) patterns read too.
    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(PersonIdConverter, "person_id")

urlpatterns = [
    path("memories", views.MemoryCollectionView.as_view(), name="memories"),
    path("memories/batch", views.MemoryBatchView.as_view(), name="memories-batch"),
    path("memories/search", views.MemorySearchView.as_view(), name="memories-search"),
    path("memories/<str:memory_id>", views.MemoryDetailView.as_view(), name="memory"),
    path("memories/<str:memory_id>/history", views.MemoryHistoryView.as_view(), name="memory-history"),
    path("sessions/<str:session_id>/recall", views.RecallView.as_view(), name="session-recall"),
    path("sessions/<str:session_id>/promote", views.PromoteView.as_view(), name="session-promote"),
    path("promotions/<str:job_id>", views.PromotionJobView.as_view(), name="promotion"),
    path("users/<person_id:user_id>/profile", views.ProfileView.as_view(), name="user-profile"),
]
