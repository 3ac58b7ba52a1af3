// The alerts panel: open incidents (acknowledge with a note, for supervisors and admins) and
// the history of resolved ones. Reads GET /api/v1/alerts every few seconds on its own.
import { api, ApiError, query } from "./api.js";
import { duration, el } from "./format.js";
import { clock, shortDate } from "./time.js";

const POLL_MS = 5000;
const STATUS_WORDS = { open: "open", acknowledged: "acknowledged", resolved: "resolved" };

// Seconds between two ISO instants (the second defaults to now).
export function between(from, to, now = Date.now()) {
  return Math.max(0, ((to ? Date.parse(to) : now) - Date.parse(from)) / 1000);
}

// "14:05" today in the site's zone, else "Dec 1 14:05".
export function when(iso, tz, now = Date.now()) {
  const at = new Date(iso);
  const sameDay = shortDate(tz, at) === shortDate(tz, new Date(now));
  return sameDay ? clock(tz, at) : `${shortDate(tz, at)} ${clock(tz, at)}`;
}

export class AlertsPanel {
  constructor(root, session) {
    this.root = root;
    this.session = session;
    this.canAck = session.role === "supervisor" || session.role === "admin";
    this.timer = null;
    this.site = null;
  }

  tz(site) { return (this.session.timezones || {})[site] || "UTC"; }

  start() { this.refresh(); }

  setSite(site) { this.site = site || null; this.refresh(); }

  async refresh() {
    clearTimeout(this.timer);
    try {
      const [active, history] = await Promise.all([
        api(`/api/v1/alerts${query({ status: "active", site_id: this.site })}`),
        api(`/api/v1/alerts${query({ status: "resolved", site_id: this.site, limit: 20 })}`),
      ]);
      this.render(active, history);
    } catch (err) {
      this.root.replaceChildren(el("p", { class: "empty", text: `Alerts unavailable (${err.message}).` }));
    }
    this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  async acknowledge(incident, note, button) {
    button.disabled = true;
    try {
      await api(`/api/v1/alerts/${incident.id}/ack`, { method: "POST", body: { note } });
    } catch (err) {
      const text = err instanceof ApiError && err.status === 409 ? "Already acknowledged or resolved." : `Not acknowledged: ${err.message}`;
      button.after(el("span", { class: "error", role: "alert", text }));
    }
    await this.refresh();
  }

  ackForm(incident) {
    if (!this.canAck || incident.status !== "open") return null;
    const input = el("input", { type: "text", name: "note", placeholder: "Note (what is being done)", "aria-label": `Note for incident ${incident.id}`, maxlength: 2000 });
    const button = el("button", { type: "submit", text: "Acknowledge" });
    return el("form", { class: "ack", onsubmit: (e) => { e.preventDefault(); this.acknowledge(incident, input.value.trim(), button); } }, input, button);
  }

  render(active, history) {
    const now = Date.now();
    const open = active.length === 0
      ? el("p", { class: "empty", text: "No open incidents." })
      : el("table", { class: "data alerts" },
        el("thead", {}, el("tr", {}, ...["Incident", "Status", "Since", "For", "Note", ""].map((h) => el("th", { text: h, class: h === "Incident" || h === "Note" ? "text" : null })))),
        el("tbody", {}, ...active.map((i) => el("tr", { "data-incident": i.id, "data-status": i.status },
          el("td", { class: "text", text: i.summary }),
          el("td", {}, el("span", { class: `badge ${i.status}`, text: STATUS_WORDS[i.status] })),
          el("td", { text: when(i.started_at, this.tz(i.site_id), now) }),
          el("td", { text: duration(between(i.started_at, null, now)) }),
          el("td", { class: "text", text: i.ack_note || "" }),
          el("td", {}, this.ackForm(i))))));
    const past = history.length === 0
      ? el("p", { class: "empty", text: "No resolved incidents yet." })
      : el("table", { class: "data compact alerts-history" },
        el("thead", {}, el("tr", {}, ...["Incident", "Started", "Resolved", "Lasted", "Acknowledged"].map((h) => el("th", { text: h, class: h === "Acknowledged" ? "text" : null })))),
        el("tbody", {}, ...history.map((i) => el("tr", { "data-incident": i.id },
          el("td", { class: "text", text: i.summary }),
          el("td", { text: when(i.started_at, this.tz(i.site_id), now) }),
          el("td", { text: when(i.resolved_at, this.tz(i.site_id), now) }),
          el("td", { text: duration(between(i.started_at, i.resolved_at)) }),
          el("td", { class: "text", text: i.acknowledged_at ? `${when(i.acknowledged_at, this.tz(i.site_id), now)} ${i.ack_note || ""}`.trim() : "—" })))));
    this.root.replaceChildren(open, el("h3", { class: "subhead", text: "History" }), past);
  }
}
