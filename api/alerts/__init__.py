"""Alert rules, incidents, notifications and escalation (docs/alerts.md)."""
