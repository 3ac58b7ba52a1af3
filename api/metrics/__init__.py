"""Metric maths (pure) and the queries that feed it."""
