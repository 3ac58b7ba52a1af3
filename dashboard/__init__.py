"""The supervisors' web dashboard, served by the API process (``mount_dashboard``).

It imports nothing of the API: the mounting app passes its dependencies in
:class:`DashboardDeps`.
"""

from dashboard.routes import DashboardDeps, mount_dashboard

__all__ = ["DashboardDeps", "mount_dashboard"]
