"""``takt privacy sheet``: the annex a works agreement needs, made from the current configuration.

:func:`sheet_markdown` is pure (configuration and token list in, Markdown out);
:func:`markdown_to_pdf` lays the same text out as a PDF with fpdf2 (the ``pdf`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from api.security import RANK, Role, StoredToken
from api.settings import ApiSettings
from takt.contract import Event
from takt.privacy import PrivacyLevel
from takt.settings import mask_url

_LEVELS = {
    PrivacyLevel.NAMED: "named: events carry the worker id of the gateway's roster or badge.",
    PrivacyLevel.PSEUDONYMOUS: (
        "pseudonymous: the gateway replaces each worker id with a keyed pseudonym (HMAC-SHA256 with the "
        "site's key, kept on the gateways); the cloud never receives roster ids. Only someone holding the "
        "key can check which roster id one pseudonym stands for (`takt privacy resolve`)."
    ),
    PrivacyLevel.STATIONS_ONLY: (
        "stations-only: the gateway sends no worker id at all (every event names `unknown`); "
        "figures exist per station, line and site only."
    ),
}
_EVENT_TYPES = {
    "working": "a person is at the station and moving (start of a working period, or a closed segment)",
    "idle": "a person is at the station and not moving",
    "absent": "nobody is at the station",
    "product_count": "units passed the station's count line",
}


def _days(value: float | None) -> str:
    return "kept until removed by hand" if value is None else f"{value:g} days"


def _who(tokens: Sequence[StoredToken], site_id: str) -> list[str]:
    rows = []
    for t in tokens:
        if t.role is Role.GATEWAY:
            continue
        if t.sites is not None and site_id not in t.sites:
            continue
        scope = (
            "this site only"
            if t.sites == (site_id,)
            else ("all sites" if t.sites is None else ", ".join(t.sites))
        )
        per_person = "yes" if RANK[t.role] >= RANK[Role.SUPERVISOR] else "no"
        rows.append(f"| {t.token_id} | {t.name or '-'} | {t.role.value} | {scope} | {per_person} |")
    return rows


def sheet_markdown(
    settings: ApiSettings, site_id: str, tokens: Sequence[StoredToken], *, generated: datetime
) -> str:
    policy = settings.site_privacy(site_id)
    level = policy.level
    fields = []
    for name, info in Event.model_fields.items():
        if level is PrivacyLevel.STATIONS_ONLY and name == "worker_id":
            fields.append("| worker_id | always `unknown` at this site |")
            continue
        fields.append(f"| {name} | {(info.description or '').replace('|', '/')} |")
    per_person = level is not PrivacyLevel.STATIONS_ONLY
    lines = [
        f"# Privacy sheet: site {site_id}",
        "",
        f"Generated {generated.isoformat(timespec='seconds')} by `takt privacy sheet --site {site_id}` from "
        "the installation's configuration (TAKT_PRIVACY, the token list, the event contract). "
        "Regenerate it after every change.",
        "",
        "## What is measured",
        "",
        "Cameras watch workstations. Frames are analysed on the gateway next to the camera and never leave "
        "it; no image, face or biometric template is stored or sent. The gateway sends events:",
        "",
        *[f"- `{kind}`: {text}" for kind, text in _EVENT_TYPES.items()],
        "",
        f"Privacy level of this site: **{level.value}**. {_LEVELS[level]}",
        "",
        "Fields of each event (docs/contract.md):",
        "",
        "| field | meaning |",
        "|---|---|",
        *fields,
        "",
        "From these the system derives, per window: working, idle and absent time, utilization, units and "
        "units per hour, per station, per line and site"
        + (", and per person" if per_person else "")
        + " (definitions: docs/metrics.md).",
        "",
        "## Who can see what",
        "",
        "- viewer: station, line and site figures only; worker ids shown as `(hidden)`.",
        "- supervisor and admin: also per-person figures"
        + ("" if per_person else " (none exist at this site)")
        + "; every such read is recorded in the append-only privacy audit (who, what, when), which "
        "admins can read and export.",
        f"- Minimum group size k = {policy.min_group}.",
        "- Tokens limited to other sites see nothing of this site.",
        "",
        "Tokens that can read this site now:",
        "",
        "| token id | name | role | sites | per-person figures |",
        "|---|---|---|---|---|",
        *(_who(tokens, site_id) or ["| - | (none besides TAKT_ADMIN_TOKEN) | | | |"]),
        "",
        "`TAKT_ADMIN_TOKEN`, when set, is an admin token for every site"
        + (" (set)." if settings.admin_token is not None else " (not set)."),
        "",
        "## Retention",
        "",
        f"- Raw events: {_days(policy.retention_days)} (`takt privacy retention` removes older ones).",
        f"- Dead letters (rejected messages): {_days(policy.dead_letter_retention_days)}.",
        "- Hourly and daily totals (rollups): "
        + (
            "kept until removed by hand."
            if settings.rollup_retention_days is None
            else f"{settings.rollup_retention_days:g} days (TimescaleDB)."
        ),
        "- Gateway buffer: events until the cloud confirms them, at most the buffer's configured age.",
        "- A person's data is erased on request with `takt privacy erase --worker W --site "
        f"{site_id}`; derived figures are rebuilt without them and the audit records the erasure.",
        "- The privacy audit itself is kept (append-only).",
        "",
        "## Where the data lives",
        "",
        "- Gateways at the site: frames (in memory only, never stored), the event buffer (SQLite on the "
        "gateway's disk)" + (", the pseudonym key" if level is PrivacyLevel.PSEUDONYMOUS else "") + ".",
        f"- Database: `{mask_url(settings.database_url)}` (events, rollups, dead letters, tokens as hashes, "
        "the privacy audit).",
        f"- Broker: `{mask_url(settings.mqtt_url)}` (events in transit, until acknowledged).",
        "",
    ]
    return "\n".join(lines)


def markdown_to_pdf(markdown: str, out: Path) -> None:
    """The sheet as a PDF (fpdf2; ``pip install 'takt[pdf]'``): headings, lists and tables as text."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    for raw in markdown.splitlines():
        line = raw.replace("`", "").replace("**", "")
        text = line.encode("latin-1", "replace").decode("latin-1")
        if line.startswith("# "):
            pdf.set_font("Helvetica", "B", 16)
            pdf.multi_cell(0, 9, text[2:], new_x="LMARGIN", new_y="NEXT")
        elif line.startswith("## "):
            pdf.set_font("Helvetica", "B", 13)
            pdf.ln(2)
            pdf.multi_cell(0, 8, text[3:], new_x="LMARGIN", new_y="NEXT")
        elif line.startswith("|---"):
            continue
        else:
            pdf.set_font("Helvetica", "", 9 if line.startswith("|") else 10)
            pdf.multi_cell(0, 5, text or " ", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(out))
