from django.urls import path, register_converter

from memory_admin.dashboard import admin_pages, checkpoints, compliance, lifecycle, sessions, users, views

app_name = "dashboard"
register_converter(users.UserIdConverter, "user_id")

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/", sessions.session_list, name="sessions"),
    path("sessions/<uuid:pk>/", sessions.session_detail, name="session"),
    path("sessions/<uuid:pk>/state.json", sessions.session_state, name="session-state"),
    path("sessions/<uuid:pk>/checkpoints/", checkpoints.checkpoint_list, name="session-checkpoints"),
    path("sessions/<uuid:pk>/checkpoints/diff/", checkpoints.checkpoint_diff, name="session-checkpoint-diff"),
    path("users/", users.find_user, name="users"),
    path("users/<uuid:tenant>/<user_id:user_id>/", users.user_detail, name="user"),
    path("memories/<uuid:pk>/", users.memory_detail, name="memory"),
    path("admin/keys/", admin_pages.api_key_list, name="api-keys"),
    path("admin/keys/new/", admin_pages.api_key_create, name="api-key-create"),
    path("admin/keys/<int:pk>/created/", admin_pages.api_key_created, name="api-key-created"),
    path("admin/keys/<int:pk>/revoke/", admin_pages.api_key_revoke, name="api-key-revoke"),
    path("admin/tenants/", admin_pages.tenant_list, name="tenants"),
    path("compliance/erasures/", compliance.erasure_list, name="erasures"),
    path("compliance/erasures/<uuid:pk>/", compliance.erasure_detail, name="erasure"),
    path("compliance/erasures/<uuid:pk>/receipt/", compliance.erasure_receipt, name="erasure-receipt"),
    path("compliance/exports/", compliance.export_list, name="exports"),
    path("compliance/exports/<uuid:pk>/", compliance.export_detail, name="export"),
    path("compliance/exports/<uuid:pk>/download/", compliance.export_download, name="export-download"),
    path("lifecycle/", lifecycle.lifecycle_overview, name="lifecycle"),
    path("lifecycle/policy/", lifecycle.policy_update, name="lifecycle-policy"),
    path("lifecycle/policy/<uuid:tenant>/", lifecycle.policy_update, name="lifecycle-policy-tenant"),
    path("lifecycle/overrides/", lifecycle.override_add, name="lifecycle-override-add"),
    path("lifecycle/overrides/<uuid:tenant>/remove/", lifecycle.override_remove, name="lifecycle-override-remove"),
    path("lifecycle/jobs/<str:job>/", lifecycle.job_start, name="lifecycle-job"),
    path("lifecycle/sessions/<uuid:pk>/archives/", lifecycle.session_archives, name="lifecycle-archives"),
    path("lifecycle/archives/<uuid:pk>/", lifecycle.archive_detail, name="lifecycle-archive"),
]
