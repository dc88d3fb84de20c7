"""Django admin for long-term memory: read-only views for superusers tracing a job or a memory by id.

Changes go through the API and the services (versions, history, the outbox, erasure), never through these
forms, so nothing here can add, change or delete. List pages show ids, scopes, states and counts only: memory
text, people's ids, facts and preferences (personal data) appear on an object's own page, which is reached by
its id (or a person's exact id in the search box), not by browsing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from memories_app.models import Memory, MemoryRevision, ProfileFactOutbox, PromotionJob, UserProfile


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ExactSearchAdmin(ReadOnlyAdmin):
    """The search box matches a person's id exactly: it finds one person's rows without listing others' ids."""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(user_id=term), False

    search_fields = ("user_id",)
    search_help_text = "An exact user id."


class RevisionInline(admin.TabularInline[MemoryRevision, Memory]):
    model = MemoryRevision
    fields = ("version", "kind", "actor", "previous_content", "content", "inputs", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("version",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Memory)
class MemoryAdmin(ExactSearchAdmin):
    list_display = (
        "id",
        "tenant",
        "scope",
        "source",
        "embedding_model",
        "version",
        "access_count",
        "created_at",
        "deleted_at",
    )
    list_filter = ("scope", "source", "embedding_model", ("deleted_at", admin.EmptyFieldListFilter))
    list_select_related = ("tenant",)
    date_hierarchy = "created_at"
    show_full_result_count = False  # a count(*) over millions of rows per page view is not worth it
    # The vector is thousands of numbers; the model name and size say what made it.
    fields = (
        "id",
        "tenant",
        "scope",
        "user_id",
        "session",
        "content",
        "metadata",
        "source",
        "source_key",
        "embedding_model",
        "dimensions",
        "access_count",
        "last_accessed_at",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
    )
    readonly_fields = fields
    inlines = (RevisionInline,)


@admin.register(PromotionJob)
class PromotionJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "tenant", "kind", "status", "attempts", "created_at", "finished_at")
    list_filter = ("kind", "status")
    list_select_related = ("tenant",)
    fields = (
        "id",
        "tenant",
        "session",
        "kind",
        "status",
        "request",
        "created_ids",
        "updated_ids",
        "attempts",
        "last_error",
        "claimed_until",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields


@admin.register(UserProfile)
class UserProfileAdmin(ExactSearchAdmin):
    list_display = ("id", "tenant", "version", "interaction_count", "last_active_at", "updated_at")
    list_select_related = ("tenant",)
    fields = (
        "tenant",
        "user_id",
        "preferences",
        "facts",
        "interaction_count",
        "last_active_at",
        "version",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields


@admin.register(ProfileFactOutbox)
class ProfileFactOutboxAdmin(ExactSearchAdmin):
    list_display = (
        "id",
        "tenant",
        "operation",
        "profile_version",
        "attempts",
        "created_at",
        "processed_at",
        "failed_at",
    )
    list_filter = (
        "operation",
        ("processed_at", admin.EmptyFieldListFilter),
        ("failed_at", admin.EmptyFieldListFilter),
    )
    list_select_related = ("tenant",)
    fields = (
        "tenant",
        "user_id",
        "fact_key",
        "operation",
        "content",
        "profile_version",
        "attempts",
        "last_error",
        "created_at",
        "processed_at",
        "failed_at",
    )
    readonly_fields = fields
