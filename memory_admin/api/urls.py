"""Every app's API routes under /api/v1/."""

from django.urls import include, path

from tenants_app.api.views import WhoAmIView

app_name = "api"

urlpatterns = [
    path("whoami", WhoAmIView.as_view(), name="whoami"),
    path("", include("sessions_app.api.urls")),
    path("", include("checkpoints_app.api.urls")),
    path("", include("memories_app.api.urls")),
    path("", include("compliance_app.api.urls")),
    path("", include("langgraph_app.api.urls")),
]
