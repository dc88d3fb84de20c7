"""The request keys of memory creates whose memories an erasure purged (see ErasedRequestKey): a new, small
table (rows live for the idempotency lifetime), so nothing here blocks a write."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("memories_app", "0009_memory_verbose_name_plural"),
        ("tenants_app", "0003_tenant_names_lower_case"),
    ]

    operations = [
        migrations.CreateModel(
            name="ErasedRequestKey",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("digest", models.CharField(max_length=64)),
                ("expires_at", models.DateTimeField()),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants_app.tenant"
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["expires_at"], name="erased_request_key_expiry")],
                "constraints": [models.UniqueConstraint(fields=("tenant", "digest"), name="erased_request_key_once")],
            },
        ),
    ]
