// The shift panel: hour-by-hour board (target vs actual), line view with the bottleneck,
// the loss Pareto, and target editing for supervisors. Raw API values sit in data-value.
import { ApiError, getToken, query } from "./api.js";
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
  if (!response.ok) throw new ApiError(response.status, data.error || response.statusText);
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
    root.replaceChildren(
      el("div", { class: "panel-head" }, el("h2", { id: "shift-title", text: "Shift board" }), this.choice),
      this.body, this.status);
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
