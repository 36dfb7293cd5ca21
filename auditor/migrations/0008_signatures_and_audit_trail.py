"""Electronic signatures on report versions (append-only), and the database half of the audit trail's append-only rule.

The trail itself is django-auditlog's table (its own migrations); this migration adds, on SQLite and PostgreSQL, a
trigger that refuses any UPDATE of a signature or of a trail entry. Deletes are refused by the models (signatures)
and by every endpoint (the trail); a database trigger on DELETE would also refuse the test suite's flush on SQLite.
On SQLite a later migration that rebuilds one of these tables drops its trigger: such a migration must re-create it.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLES = ("auditor_signature", "auditlog_logentry")


def add_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "CREATE OR REPLACE FUNCTION dermaudit_refuse_update() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'append-only: rows of % cannot be changed', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql",
            params=None)  # no parameters: the % is PL/pgSQL's, not a placeholder
        for table in TABLES:
            schema_editor.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                                  "FOR EACH ROW EXECUTE FUNCTION dermaudit_refuse_update()")
    elif vendor == "sqlite":
        for table in TABLES:
            schema_editor.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                                  f"BEGIN SELECT RAISE(ABORT, 'append-only: rows of {table} cannot be changed'); END")


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif vendor == "sqlite":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only")
    if vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS dermaudit_refuse_update()")


class Migration(migrations.Migration):

    dependencies = [
        ("auditor", "0007_portable_evidence"),
        ("auditlog", "0017_add_actor_email"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Signature",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("signed_pdf_sha256", models.CharField(help_text="SHA-256 of the signed version's PDF, checked against its bytes when it was signed", max_length=64)),
                ("signer_username", models.CharField(max_length=150)),
                ("signer_full_name", models.CharField(blank=True, max_length=300)),
                ("signed_at", models.DateTimeField(help_text="when it was signed (stored and shown in UTC)")),
                ("meaning", models.CharField(choices=[("reviewed", "Reviewed"), ("approved", "Approved"), ("rejected", "Rejected")], max_length=10)),
                ("reason", models.TextField()),
                ("verdict", models.CharField(blank=True, max_length=12)),
                ("failed_criteria", models.JSONField(blank=True, default=list)),
                ("report", models.ForeignKey(help_text="the version that was signed", on_delete=django.db.models.deletion.PROTECT, related_name="signatures", to="auditor.report")),
                ("signer", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "ordering": ["signed_at", "id"],
            },
        ),
        migrations.AddField(
            model_name="report",
            name="signature",
            field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="issued_report", to="auditor.signature"),
        ),
        migrations.RunPython(add_triggers, drop_triggers),
    ]
