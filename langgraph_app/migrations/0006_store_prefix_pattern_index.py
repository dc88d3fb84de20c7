"""The store's (tenant, prefix) index compares prefixes with pattern operators (byte order, whatever the
database's collation), so that a namespace prefix search reads a range of it instead of every item of the
tenant. The new index is built before the old one goes, both concurrently (no lock on writes, so not in a
transaction)."""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("langgraph_app", "0005_drop_redundant_session_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="storeitem",
            index=models.Index(
                fields=["tenant", "prefix"],
                name="lg_store_prefix_pattern",
                opclasses=["uuid_ops", "varchar_pattern_ops"],
            ),
        ),
        RemoveIndexConcurrently(model_name="storeitem", name="lg_store_tenant_prefix"),
    ]
