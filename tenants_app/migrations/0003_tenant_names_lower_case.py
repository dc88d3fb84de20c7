"""Tenant names are stored in lower case, so that they are unique whatever the case.

Names stored before the rule are lower-cased, except where that would clash: of names that differ only by case,
the oldest is lower-cased when no tenant holds the lower-case spelling yet, and the others keep theirs, with
their keys and data (merging two tenants is an operator's decision, not a migration's). The check is added NOT
VALID, so that those rows do not stop the migration; every row written afterwards must be in lower case, and
with each spelling's lower-case form now held by one tenant, the unique name refuses any later clash.
"""

from django.db import migrations, models
from django.db.models.functions import Lower

LOWER_CASE_WHERE_FREE = """
UPDATE tenants_app_tenant AS tenant SET name = lower(tenant.name)
FROM (
    SELECT DISTINCT ON (lower(name)) id FROM tenants_app_tenant
    WHERE name <> lower(name)
    ORDER BY lower(name), created_at, id
) AS oldest
WHERE tenant.id = oldest.id
  AND NOT EXISTS (SELECT 1 FROM tenants_app_tenant AS other WHERE other.name = lower(tenant.name))
"""


class Migration(migrations.Migration):
    dependencies = [("tenants_app", "0002_role_groups")]

    operations = [
        migrations.RunSQL(LOWER_CASE_WHERE_FREE, reverse_sql=migrations.RunSQL.noop),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="tenant",
                    constraint=models.CheckConstraint(
                        condition=models.Q(name=Lower("name")), name="tenant_name_lower_case"
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'ALTER TABLE "tenants_app_tenant" ADD CONSTRAINT "tenant_name_lower_case"'
                    ' CHECK ("name" = lower("name")) NOT VALID',
                    reverse_sql='ALTER TABLE "tenants_app_tenant" DROP CONSTRAINT "tenant_name_lower_case"',
                ),
            ],
        ),
    ]
