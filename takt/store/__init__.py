"""Storage shared by the cloud roles (collector, API, dashboard, model quality).

- :mod:`takt.store.db`: connections, the schema (Alembic migrations in
  ``takt/store/migrations``) and the check that it is current.
- :mod:`takt.store.events`: the idempotent writer of events, dead letters and
  the sequence registry.
- :mod:`takt.store.rollups`: building, refreshing and reading the rollups.
- :mod:`takt.store.audit`: the sequence audit (gaps a gateway never filled).

Edge installs never import this package: it needs the ``cloud`` extra.
"""
