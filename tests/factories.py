"""factory_boy factories for the rows most tests need."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group, User

from sessions_app.models import AgentSession
from tenants_app.models import Tenant


class TenantFactory(factory.django.DjangoModelFactory[Tenant]):
    class Meta:
        model = Tenant
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tenant-{n}")


class StaffFactory(factory.django.DjangoModelFactory[User]):
    """A dashboard user; pass `role="support"` (or compliance, admin) to put them in that group."""

    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff-{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def role(obj: User, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create and extracted:
            obj.groups.add(Group.objects.get_or_create(name=extracted)[0])
        obj.save()


class SessionFactory(factory.django.DjangoModelFactory[AgentSession]):
    """A session row made directly (tests of other apps); API tests create sessions through the API."""

    class Meta:
        model = AgentSession

    tenant = factory.SubFactory(TenantFactory)
    session_id = factory.Sequence(lambda n: f"session-{n}")
    user_id = factory.Sequence(lambda n: f"user-{n}")
