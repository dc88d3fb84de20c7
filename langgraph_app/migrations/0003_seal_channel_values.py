"""Channel values and pending writes are stored through the codec (memory_admin.codec.bytes_sealer_for):
encrypted with the person's key, or tagged as opaque bytes. Rows written before carry untagged bytes; this
marks them as opaque, so every stored value is read the same way (`open_bytes`). Not reversible: rows
written since may be encrypted, which the earlier code could not read."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("langgraph_app", "0002_storeitem")]

    operations = [
        migrations.RunSQL("UPDATE langgraph_app_channelblob SET blob = '\\x42'::bytea || blob WHERE blob IS NOT NULL"),
        migrations.RunSQL("UPDATE langgraph_app_pendingwrite SET blob = '\\x42'::bytea || blob WHERE blob IS NOT NULL"),
    ]
