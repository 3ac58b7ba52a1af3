"""Takt: shop-floor productivity monitor.

This package holds what every role shares: the edge<->cloud contract
(:mod:`takt.contract`), settings, logging, the ``takt`` command line and the
local development stack. Each role lives in its own top-level package
(``edge_agent``, ``collector``, ``api``, ``broker``).
"""

__version__ = "0.1.0"
