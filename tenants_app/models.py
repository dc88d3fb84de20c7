"""Tenants (the organisations whose agents use the service) and their agents' API keys."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def normalise_tenant_name(name: str) -> str:
    """The one spelling a tenant name is stored and looked up in: `Acme ` is tenant `acme`."""
    return name.strip().lower()


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Stored in lower case (save), and so unique whatever the case: `--tenant Acme` and a form's "ACME" are `acme`.
    name = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Added NOT VALID (migration 0003): names stored before the rule that would clash stay as they are.
            models.CheckConstraint(condition=models.Q(name=Lower("name")), name="tenant_name_lower_case"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.name = normalise_tenant_name(self.name)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        """The name in lower case, and no other tenant's in any case (the admin's form shows the error)."""
        self.name = normalise_tenant_name(self.name)
        if Tenant.objects.filter(name__iexact=self.name).exclude(pk=self.pk).exists():
            raise ValidationError({"name": f"A tenant named {self.name!r} already exists."})


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """An agent's credential. Only a SHA-256 of the secret is stored; the key itself is shown once."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The key's public part, used to find the row; the secret part is compared by hash.
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.tenant.name}/{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
