from django.contrib import admin

from sessions_app.models import AgentSession, Event


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin[AgentSession]):
    list_display = ("session_id", "tenant", "status", "head_version", "created_at", "last_activity_at")
    list_filter = ("status", "tenant")
    search_fields = ("session_id",)
    list_select_related = ("tenant",)
    readonly_fields = ("version", "head_version", "created_at", "updated_at", "last_activity_at")

    # Sessions leave by erasure (approved by two people, audited, their Redis keys and cold-storage archive
    # removed with them, their person's key destroyed) or with their tenant, never by hand: a row deleted here
    # would take its events and archive records by cascade, unaudited, and leave the archive objects and Redis
    # keys behind.
    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ("session", "version", "type", "created_at")
    list_filter = ("type",)
    list_select_related = ("session",)
    # Streams are append-only: the admin shows them, it never edits or deletes them (a gap would stop every
    # rebuild of the state past it). They leave with their session's erasure, its archival or their tenant.
    readonly_fields = ("session", "version", "type", "payload", "schema_version", "created_at")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
