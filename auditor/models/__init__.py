"""All DermAudit models; split by concern, imported here so `auditor.models.X` keeps working."""
from .audits import Audit, AuditChunk, AuditResult, Report
from .core import DuplicateRecord, Image, ImageSet, IngestError, IngestJob, Membership, Organisation, Role
from .scoring import DetectorScoring
from .training import DetectorRun, GeneratorRun, ImageScore

__all__ = [
    "Audit", "AuditChunk", "AuditResult", "DetectorRun", "DetectorScoring", "DuplicateRecord", "GeneratorRun", "Image", "ImageScore", "ImageSet",
    "IngestError", "IngestJob", "Membership", "Organisation", "Report", "Role",
]
