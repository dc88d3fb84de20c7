"""Filters for the session list."""

from __future__ import annotations

import django_filters

from memory_admin.api.filters import UtcIsoDateTimeFilter
from sessions_app.models import AgentSession, SessionStatus


class SessionFilter(django_filters.FilterSet):
    user_id = django_filters.CharFilter(strip=False)
    status = django_filters.MultipleChoiceFilter(choices=SessionStatus.choices)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    active_after = UtcIsoDateTimeFilter(field_name="last_activity_at", lookup_expr="gte")

    class Meta:
        model = AgentSession
        fields = ["user_id", "status"]
