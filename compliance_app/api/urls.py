"""Erasure and export requests under /api/v1/."""

from __future__ import annotations

from django.urls import path

from compliance_app.api import views

urlpatterns = [
    path("erasure-requests", views.ErasureListView.as_view(), name="erasure-list"),
    path("erasure-requests/<uuid:request_id>", views.ErasureDetailView.as_view(), name="erasure-detail"),
    path("erasure-requests/<uuid:request_id>/receipt", views.ErasureReceiptView.as_view(), name="erasure-receipt"),
    path("export-requests", views.ExportListView.as_view(), name="export-list"),
    path("export-requests/<uuid:export_id>", views.ExportDetailView.as_view(), name="export-detail"),
    path("export-requests/<uuid:export_id>/archive", views.ExportArchiveView.as_view(), name="export-archive"),
]
