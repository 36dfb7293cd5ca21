"""Detection: the service around the `deepfake_detector` library (train detector runs, score image sets).

Entry points: `auditor.detection.service.create_detector_run` and `request_scoring` (API and web pages); the
work runs in `tasks` — training in `runs`, set scoring and summaries in `scoring`.
"""
