import logging

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self) -> None:
        # WeasyPrint logs every page it lays out at INFO; a 100-page report would drown the worker's log.
        logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

        from jobs.maintenance import register_pruner
        from reports.services import reports_prune

        register_pruner("report files", reports_prune)
