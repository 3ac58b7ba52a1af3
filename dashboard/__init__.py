"""The supervisors' web dashboard, served by the API process (``mount_dashboard``)."""

from dashboard.routes import mount_dashboard

__all__ = ["mount_dashboard"]
