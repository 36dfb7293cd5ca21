"""Audits: a generated set scored against a reference, as resumable stages run by Celery workers.

Entry point: `auditor.audits.pipeline.start_audit` (freezes the criteria, creates the per-image chunks, queues
`auditor.run_audit`). `images` is the per-image chunk work (features, phototypes), `stages` the set-level
stages (fidelity, phototype, memorisation, report), `detector_stages` the detector and its explanations,
`recovery` takes back the work of dead workers, `tasks` are the thin Celery wrappers.
"""
