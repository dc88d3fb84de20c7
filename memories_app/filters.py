"""Filters for listing memories."""

from __future__ import annotations

import django_filters

from memories_app.models import Memory, Scope, Source
from memory_admin.api.filters import UtcIsoDateTimeFilter


class MemoryFilter(django_filters.FilterSet):
    scope = django_filters.ChoiceFilter(choices=Scope.choices)
    user_id = django_filters.CharFilter(max_length=256, strip=False)
    session_id = django_filters.CharFilter(field_name="session__session_id", max_length=128)
    source = django_filters.ChoiceFilter(choices=Source.choices)
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Memory
        fields = ["scope", "user_id", "session_id", "source", "created_after", "created_before"]
