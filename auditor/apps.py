from django.apps import AppConfig


class AuditorConfig(AppConfig):
    name = "auditor"
    verbose_name = "DermAudit"

    def ready(self) -> None:
        from . import detector_tasks  # noqa: F401  (registers auditor.train_detector / auditor.score_image_set)
