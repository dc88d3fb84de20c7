from django.db import migrations

APPEND_ONLY = """
CREATE FUNCTION compliance_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the compliance audit log is append-only';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER compliance_audit_append_only BEFORE UPDATE OR DELETE ON compliance_app_auditentry
  FOR EACH ROW EXECUTE FUNCTION compliance_audit_append_only();
"""

REMOVE = """
DROP TRIGGER IF EXISTS compliance_audit_append_only ON compliance_app_auditentry;
DROP FUNCTION IF EXISTS compliance_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance_app", "0001_initial")]
    operations = [migrations.RunSQL(APPEND_ONLY, REMOVE)]
