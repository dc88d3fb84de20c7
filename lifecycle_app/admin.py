from django.contrib import admin

from lifecycle_app.models import ArchiveSegment, JobRun, RetentionPolicy


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin[RetentionPolicy]):
    list_display = ("__str__", "updated_by", "updated_at")
    list_select_related = ("tenant",)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin[JobRun]):
    list_display = ("job", "status", "dry_run", "triggered_by", "started_at", "finished_at")
    list_filter = ("job", "status", "dry_run")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(ArchiveSegment)
class ArchiveSegmentAdmin(admin.ModelAdmin[ArchiveSegment]):
    list_display = ("session", "kind", "from_version", "to_version", "stored_bytes", "created_at")
    list_filter = ("kind",)
    list_select_related = ("session",)

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    # A record deleted here would leave its object in cold storage with nothing pointing to it, and the versions
    # it holds unreadable: archives leave with their session's erasure or their tenant.
    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
