"""Evidence by storage name: absolute paths in Report rows, stored stage results and JSON twins become names relative
to MEDIA_ROOT ("reports/audit-1/report-v1-….pdf", "audits/1/memorization/pair_00.png").

Forward, a path is rewritten when it lies under the current MEDIA_ROOT, or when it names a file of a media folder that
was copied here before migrating (its tail from "reports/audit-N/" or "audits/N/" on exists under MEDIA_ROOT). Any
other path is kept as it is and logged: nothing is guessed. JSON twins on disk are rewritten (atomically) when the file
exists under MEDIA_ROOT; their PDFs are never touched, so every recorded SHA-256 still holds.

Reversible: backward turns every name into the absolute path under the MEDIA_ROOT of the moment, which is what the
code before this migration read. Files are rewritten outside the database transaction; the code reads both forms
(an absolute path inside MEDIA_ROOT resolves through the storage too), so an interrupted run leaves nothing unreadable.

Self-contained on purpose (no imports from the app): a migration must keep doing what it did when the app changes.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import migrations, models

logger = logging.getLogger("auditor.migrations.portable_evidence")
KNOWN_FOLDERS = {"reports": re.compile(r"audit-\d+"), "audits": re.compile(r"\d+")}


def _root() -> Path:
    return Path(settings.MEDIA_ROOT).resolve()


def to_name(value, root: Path, where: str):
    """`value` as a storage name when it is an absolute path this MEDIA_ROOT holds; otherwise unchanged (logged)."""
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    path = Path(value)
    for base in {root, Path(settings.MEDIA_ROOT)}:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    parts = path.parts
    for index in range(len(parts) - 2, 0, -1):  # the last known folder: a media folder copied from elsewhere
        pattern = KNOWN_FOLDERS.get(parts[index])
        if pattern and pattern.fullmatch(parts[index + 1]):
            tail = PurePosixPath(*parts[index:])
            if (root / tail).is_file():
                return tail.as_posix()
            break
    logger.warning("portable evidence: kept %s of %s as it is: it is not under MEDIA_ROOT (%s)", value, where, root)
    return value


def to_absolute(value, root: Path, where: str):
    if not isinstance(value, str) or not value or os.path.isabs(value):
        return value
    return str(root / value)


def _rewrite_paths(node, convert, root: Path, where: str):
    """Every "path" entry of a stored result (memorisation pairs, Grad-CAM overlays, fold model checkpoints)."""
    if isinstance(node, dict):
        return {key: convert(value, root, where) if key == "path" else _rewrite_paths(value, convert, root, where)
                for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite_paths(item, convert, root, where) for item in node]
    return node


def _rewrite_twin(file: Path, convert, root: Path) -> None:
    """The image grids' picture paths of a JSON twin on disk; the file is replaced atomically when anything changed."""
    if not file.is_file():
        logger.warning("portable evidence: JSON twin %s not found under MEDIA_ROOT; left as it is", file)
        return
    try:
        twin = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("portable evidence: JSON twin %s cannot be read (%s); left as it is", file, exc)
        return
    changed = False
    for section in twin.get("sections", []):
        for block in section.get("blocks", []):
            if block.get("type") != "image_grid":
                continue
            for image in block.get("images", []):
                new = convert(image.get("path"), root, f"twin {file.name}")
                changed |= new != image.get("path")
                image["path"] = new
    if not changed:
        return
    descriptor, temporary = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(json.dumps(twin, indent=1, allow_nan=False, ensure_ascii=False).encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _migrate(apps, convert) -> None:
    root = _root()
    Report = apps.get_model("auditor", "Report")
    AuditResult = apps.get_model("auditor", "AuditResult")
    for report in Report.objects.all().iterator():
        where = f"report {report.pk} (audit {report.audit_id} v{report.version})"
        pdf, twin = convert(report.pdf, root, where), convert(report.json, root, where)
        if (pdf, twin) != (report.pdf, report.json):
            Report.objects.filter(pk=report.pk).update(pdf=pdf, json=twin)
        twin_file = Path(twin) if os.path.isabs(twin) else root / twin
        if twin_file.resolve().is_relative_to(root):
            _rewrite_twin(twin_file, convert, root)
    for result in AuditResult.objects.all().iterator():
        data = _rewrite_paths(result.data, convert, root, f"audit {result.audit_id} stage {result.stage}")
        if data != result.data:
            AuditResult.objects.filter(pk=result.pk).update(data=data)


def forwards(apps, schema_editor) -> None:
    _migrate(apps, to_name)


def backwards(apps, schema_editor) -> None:
    _migrate(apps, to_absolute)


class Migration(migrations.Migration):

    dependencies = [
        ("auditor", "0006_feature_precision_deployment_default"),
    ]

    operations = [
        migrations.AlterField(
            model_name="report",
            name="pdf",
            field=models.CharField(help_text="storage name of the PDF (relative to MEDIA_ROOT)", max_length=500),
        ),
        migrations.AlterField(
            model_name="report",
            name="json",
            field=models.CharField(help_text="storage name of the JSON twin (relative to MEDIA_ROOT)", max_length=500),
        ),
        migrations.RunPython(forwards, backwards),
    ]
