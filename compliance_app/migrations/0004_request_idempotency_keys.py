"""The Idempotency-Key an erasure or export request was filed with, unique per tenant (see the models).

Both tables hold a row per request (small): the columns are nullable without a default, and the unique indexes
cover only keyed rows.
"""

from django.db import migrations, models

KEYED = models.Q(("idempotency_key__isnull", False))


class Migration(migrations.Migration):
    dependencies = [
        ("compliance_app", "0003_export_job_and_purge_progress"),
    ]

    operations = [
        migrations.AddField(
            model_name="erasurerequest",
            name="idempotency_key",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="exportrequest",
            name="idempotency_key",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddConstraint(
            model_name="erasurerequest",
            constraint=models.UniqueConstraint(
                condition=KEYED, fields=("tenant", "idempotency_key"), name="erasure_idempotency_key"
            ),
        ),
        migrations.AddConstraint(
            model_name="exportrequest",
            constraint=models.UniqueConstraint(
                condition=KEYED, fields=("tenant", "idempotency_key"), name="export_idempotency_key"
            ),
        ),
    ]
