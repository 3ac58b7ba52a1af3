"""The shift report (docs/metrics.md, "Shift report"): its content as HTML and PDF, and its schedule."""
