"""All DermAudit models; split by concern, imported here so `auditor.models.X` keeps working."""
from auditor.models.audits import Audit, AuditChunk, AuditResult, Report
from auditor.models.core import DuplicateRecord, Image, ImageSet, IngestError, IngestJob, Membership, Organisation, Role
from auditor.models.scoring import DetectorScoring
from auditor.models.signatures import Signature
from auditor.models.training import DetectorRun, GeneratorRun, ImageScore
from auditor.models import trail  # noqa: F401  (registers the audit trail's models with auditlog)

__all__ = [
    "Audit", "AuditChunk", "AuditResult", "DetectorRun", "DetectorScoring", "DuplicateRecord", "GeneratorRun", "Image", "ImageScore", "ImageSet",
    "IngestError", "IngestJob", "Membership", "Organisation", "Report", "Role", "Signature",
]
