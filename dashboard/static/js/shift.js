// The shift panel: hour-by-hour board (target vs actual), line view with the bottleneck,
// the loss Pareto, and for supervisors target editing, the shift report (download, and who
// gets it by email at each shift end). Raw API values sit in data-value.
import { ApiError, errorText, getToken, query } from "./api.js";
import { el, fmt, hours } from "./format.js";

const opt = (v, kind) => (v === null || v === undefined ? "—" : fmt[kind](v));

function cell(value, kind) {
  return el("td", { "data-value": value ?? "" }, opt(value, kind));
}

function table(id, caption, head, rows) {
  return el("table", { id, class: "data compact" },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows));
}

async function send(path, method, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${getToken()}`, "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, errorText(data, response.statusText));
  return data;
}

async function get(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${getToken()}`, Accept: "application/json" } });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || response.statusText);
  return data;
}

export class ShiftPanel {
  constructor(root, filters, session) {
    this.root = root;
    this.filters = filters;
    this.canEdit = session.role === "supervisor" || session.role === "admin";
    this.choice = el("select", { id: "shift-target", "aria-label": "Line or station", onchange: () => this.refresh() });
    this.body = el("div", { class: "shift-body" });
    this.status = el("p", { class: "notice-inline", role: "status" });
    this.report = this.canEdit ? new ReportBox(filters) : null;
    root.replaceChildren(
      el("div", { class: "panel-head" }, el("h2", { id: "shift-title", text: "Shift board" }), this.choice),
      this.body, this.status, this.report ? this.report.root : null);
  }

  async setChoices(stations) {
    let lines = [];
    try { lines = await get("/api/v1/lines"); } catch { lines = []; }
    const previous = this.choice.value;
    this.choice.replaceChildren(
      ...lines.map((l) => el("option", { value: `line:${l.line_id}`, text: `Line: ${l.name}` })),
      ...stations.map((s) => el("option", { value: `station:${s.station_id}`, text: `Station: ${s.name}` })));
    if (previous) this.choice.value = previous;
  }

  selected() {
    const [kind, id] = (this.choice.value || ":").split(/:(.*)/s);
    return { kind, id };
  }

  async refresh() {
    const { kind, id } = this.selected();
    if (!id) { this.body.replaceChildren(el("p", { class: "empty", text: "No line or station yet." })); return; }
    const p = this.filters.params();
    const which = kind === "line" ? { line_id: id } : { station_id: id };
    try {
      const [board, losses, line] = await Promise.all([
        get(`/api/v1/metrics/hour-by-hour${query({ ...p, ...which })}`),
        get(`/api/v1/metrics/losses${query({ ...p, ...which })}`),
        kind === "line" ? get(`/api/v1/metrics/lines/${encodeURIComponent(id)}${query(p)}`) : null,
      ]);
      const parts = [this.board(board), this.pareto(losses)];
      if (line) parts.splice(1, 0, this.lineView(line));
      // The same form across live refreshes, so what a supervisor is typing stays.
      if (this.canEdit && kind === "station") {
        if (this.formStation !== id) { this.form = this.targetForm(id); this.formStation = id; }
        parts.push(this.form);
      }
      this.body.replaceChildren(...parts);
      if (this.report) await this.report.refresh();
      this.root.dataset.loaded = String(Date.now());
    } catch (err) {
      this.body.replaceChildren(el("p", { class: "empty", text: `Shift board unavailable (${err.message}).` }));
    }
  }

  board(b) {
    // Hours in the site's time zone, as the API aligns them.
    const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: b.timezone });
    const rows = b.hours.map((h) => el("tr", { "data-hour": h.hour_start },
      el("th", { scope: "row", text: clock.format(new Date(h.hour_start)) }),
      cell(h.target_units, "rate"), cell(h.actual_units, "int"), cell(h.cumulative_gap, "rate")));
    return table("hour-by-hour", `Hour by hour at ${b.station_id} (${b.timezone})`,
      ["Hour", "Target", "Actual", "Cumulative gap"], rows);
  }

  lineView(v) {
    const rows = v.stations.map((s) => el("tr", { "data-station": s.station_id },
      el("th", { scope: "row" }, s.station_id,
        s.station_id === v.bottleneck_station_id ? el("span", { class: "badge offline", text: "bottleneck" }) : null),
      cell(s.total_units_produced, "int"), cell(s.units_per_working_hour, "rate"),
      cell(s.median_cycle_time_s, "rate"), cell(s.performance_percentage, "pct"),
      cell(s.quality_percentage, "pct"), cell(s.oee_percentage, "pct")));
    return table("line-view", `Line ${v.name}: bottleneck ${v.bottleneck_station_id ?? "none"}`,
      ["Station", "Units", "Units / working h", "Median cycle (s)", "Performance %", "Quality %", "OEE %"], rows);
  }

  pareto(l) {
    const rows = l.rows.map((r) => el("tr", { "data-reason": r.code },
      el("th", { scope: "row", text: r.label }),
      el("td", { "data-value": r.lost_hours }, hours(r.lost_hours)), cell(r.share_percentage, "pct")));
    return table("losses", `Lost time by reason (planned breaks ${hours(l.planned_break_hours)})`,
      ["Reason", "Lost", "Share %"], rows);
  }

  targetForm(station) {
    const input = el("input", { id: "target-cycle", type: "number", min: "0.1", step: "0.1", required: true });
    const form = el("form", { class: "target-form", "aria-label": "Set target" },
      el("label", { for: "target-cycle", text: "Ideal cycle time (s per unit)" }), input,
      el("button", { type: "submit", text: "Save target" }));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const saved = await send(`/api/v1/targets/stations/${encodeURIComponent(station)}`, "PUT",
          { ideal_cycle_time_s: Number(input.value) });
        this.status.textContent = `Target for ${station}: ${saved.current ? saved.current.ideal_cycle_time_s : "—"} s per unit.`;
        await this.refresh();
      } catch (err) {
        this.status.textContent = `Target not saved: ${err.message}`;
      }
    });
    return form;
  }
}

function scheduleText(s) {
  if (s.scheduled) return `at the end of ${s.shifts.map((x) => `shift ${x}`).join(", ")}`;
  if (s.shifts.length) return "not scheduled: scheduled reports are off in this API (TAKT_REPORT_INTERVAL_S is 0)";
  return "not scheduled: the site has no shift calendar";
}

// The shift report: this window's report to download (HTML or PDF), and per site the
// recipients it is emailed to at each shift end (GET/PUT /api/v1/reports/recipients).
class ReportBox {
  constructor(filters) {
    this.filters = filters;
    this.list = el("ul", { id: "report-recipients", class: "recipients" });
    this.site = el("select", { id: "report-site", "aria-label": "Site of the recipients" });
    this.emails = el("input", { id: "report-emails", type: "text", size: 40, placeholder: "lead@plant.example, …" });
    this.status = el("p", { class: "notice-inline", role: "status", id: "report-status" });
    const form = el("form", { class: "recipients-form", "aria-label": "Report recipients" },
      el("label", { for: "report-site", text: "Site" }), this.site,
      el("label", { for: "report-emails", text: "Recipients (comma-separated)" }), this.emails,
      el("button", { type: "submit", text: "Save recipients" }));
    form.addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
    this.site.addEventListener("change", () => this.fillEmails());
    this.root = el("div", { id: "shift-report", class: "shift-report" },
      el("h3", { class: "subhead", text: "Shift report" }),
      el("p", {}, "This window's report: ",
        el("button", { type: "button", class: "secondary", text: "Download HTML", onclick: () => this.download("html") }), " ",
        el("button", { type: "button", class: "secondary", text: "Download PDF", onclick: () => this.download("pdf") })),
      el("p", { text: "Emailed at each shift end to:" }), this.list, form, this.status);
    this.form = form;
    this.sites = [];
  }

  async refresh() {
    try {
      this.sites = await get("/api/v1/reports/recipients");
    } catch (err) {
      this.list.replaceChildren(el("li", { text: `Recipients unavailable (${err.message}).` }));
      return;
    }
    const chosen = this.filters.params().site_id;
    if (chosen && !this.sites.some((s) => s.site_id === chosen)) {
      this.sites.push({ site_id: chosen, scheduled: false, shifts: [], recipients: [] });
    }
    this.list.replaceChildren(...(this.sites.length ? this.sites.map((s) => el("li", { "data-site": s.site_id },
      el("strong", { text: s.site_id }), ": ",
      s.recipients.length ? s.recipients.map((r) => r.email).join(", ") : "nobody yet",
      el("span", { class: "muted", text: ` (${scheduleText(s)})` })))
      : [el("li", { text: "No site has a shift calendar (TAKT_CALENDARS): no reports are scheduled." })]));
    this.form.hidden = this.sites.length === 0;
    const previous = this.site.value || chosen;
    this.site.replaceChildren(...this.sites.map((s) => el("option", { value: s.site_id, text: s.site_id })));
    if (previous && this.sites.some((s) => s.site_id === previous)) this.site.value = previous;
    if (document.activeElement !== this.emails) this.fillEmails();
  }

  fillEmails() {
    const s = this.sites.find((x) => x.site_id === this.site.value);
    this.emails.value = s ? s.recipients.map((r) => r.email).join(", ") : "";
  }

  async save() {
    const site = this.site.value;
    const emails = this.emails.value.split(/[\s,;]+/).filter(Boolean);
    try {
      const saved = await send(`/api/v1/reports/recipients/${encodeURIComponent(site)}`, "PUT", { emails });
      this.status.textContent = `Recipients of ${site}: ${saved.recipients.map((r) => r.email).join(", ") || "nobody"}.`;
      await this.refresh();
    } catch (err) {
      this.status.textContent = `Recipients not saved: ${err.message}`;
    }
  }

  async download(format) {
    const p = this.filters.params();
    try {
      const response = await fetch(`/api/v1/reports/shift${query({ ...p, format })}`, { headers: { Authorization: `Bearer ${getToken()}` } });
      if (!response.ok) throw new ApiError(response.status, response.statusText);
      const url = URL.createObjectURL(await response.blob());
      const a = el("a", { href: url, download: `shift-report.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      this.status.textContent = `Report downloaded (${format.toUpperCase()}).`;
    } catch (err) {
      this.status.textContent = `Report not downloaded: ${err.message}`;
    }
  }
}
