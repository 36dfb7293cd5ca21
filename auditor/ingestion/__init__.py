"""Ingestion: uploads, zips and folders become content-addressed, validated images of an image set.

Entry points: `auditor.ingestion.uploads.stage_uploads` (web and API uploads, then the `auditor.ingest` task) and
`auditor.ingestion.importer.run_ingest` (a folder or zip from the command line). `rules` holds the per-file
rules (decode, normalise, labels.csv); `importer` the batch (archive safety, chunked commits, duplicates).
"""
