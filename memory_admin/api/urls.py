"""Every app's API routes under /api/v1/."""

from django.urls import path

from tenants_app.api.views import WhoAmIView

urlpatterns = [
    path("whoami", WhoAmIView.as_view(), name="whoami"),
]
