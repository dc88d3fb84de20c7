from django.urls import path

from memory_admin.dashboard import checkpoints, sessions, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("sessions/", sessions.session_list, name="sessions"),
    path("sessions/<uuid:pk>/", sessions.session_detail, name="session"),
    path("sessions/<uuid:pk>/state.json", sessions.session_state, name="session-state"),
    path("sessions/<uuid:pk>/checkpoints/", checkpoints.checkpoint_list, name="session-checkpoints"),
    path("sessions/<uuid:pk>/checkpoints/diff/", checkpoints.checkpoint_diff, name="session-checkpoint-diff"),
]
