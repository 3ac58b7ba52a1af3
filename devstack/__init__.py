"""Real Mosquitto and PostgreSQL servers on loopback, for development, the demo and tests.

The same classes back ``takt dev up|down|status``, ``takt demo`` and the
pytest fixtures, so tests run against what developers run.
"""

from devstack.mosquitto import MosquittoServer
from devstack.postgres import PostgresServer
from devstack.stack import DevStack

__all__ = ["DevStack", "MosquittoServer", "PostgresServer"]
