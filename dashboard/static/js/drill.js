// Drill-down on one worker or station: the day's state timeline, units per
// hour, utilization by day, and the recent events behind the numbers.
import { api, query } from "./api.js";
import { el, fmt, timeOfDay, utilBar } from "./format.js";
import { renderTimeline } from "./timeline.js";
import { renderSeries } from "./charts.js";
import { recentRows } from "./events.js";
import { addDays, dateString, dayWindow, longDate, shortDate } from "./time.js";

// Days of utilization shown up to the drill-down's day (more if the filter window is longer).
const TREND_DAYS = 14;
const RECENT_ROWS = 25;

export class DrillDown {
  constructor(dialog, filters, onError) {
    this.dialog = dialog;
    this.filters = filters;
    this.onError = onError;
    this.subject = null;
    this.day = dialog.querySelector("#drill-day");
    dialog.querySelector("#drill-close").addEventListener("click", () => dialog.close());
    this.day.addEventListener("change", () => this.refresh());
    dialog.addEventListener("close", () => { this.subject = null; });
  }

  isOpen() { return this.subject !== null; }

  open(kind, row) {
    this.subject = { kind, id: kind === "worker" ? row.worker_id : row.station_id, name: row.name };
    // The day shown is the last day of the filter window that has begun.
    const w = this.filters.window();
    const last = new Date(Math.min(w.to.getTime() - 1, Date.now()));
    this.day.value = dateString(this.filters.timezone(), last);
    this.dialog.querySelector("#drill-title").textContent =
      `${kind === "worker" ? "Worker" : "Workstation"} ${row.name} (${this.subject.id})`;
    if (!this.dialog.open) this.dialog.showModal();
    return this.refresh();
  }

  // The chosen day of the site: [its midnight, the next one).
  dayWindow() {
    return dayWindow(this.filters.timezone(), this.day.value);
  }

  async refresh() {
    if (!this.subject) return;
    const { kind, id } = this.subject;
    const base = this.filters.params();
    const tz = this.filters.timezone();
    const day = this.dayWindow();
    const idParam = kind === "worker" ? { worker_id: id } : { station_id: id };
    const by = kind === "worker" ? "worker" : "workstation";
    const trend = { from: new Date(Math.min(Date.parse(base.from), addDays(tz, day.from, 1 - TREND_DAYS).getTime())), to: day.to };
    const dayQ = { from: day.from.toISOString(), to: day.to.toISOString(), site_id: base.site_id };
    for (const label of this.dialog.querySelectorAll(".drill-day-label")) label.textContent = longDate(tz, day.from);
    this.dialog.querySelector("#chart-units-window").textContent = `${longDate(tz, day.from)}, 00:00–24:00 (${tz})`;
    this.dialog.querySelector("#chart-util-window").textContent =
      `${shortDate(tz, trend.from)} – ${longDate(tz, addDays(tz, trend.to, -1))} (${tz})`;
    try {
      const [metrics, timeline, hourly, daily, recent] = await Promise.all([
        api(`/api/metrics/${kind === "worker" ? "workers" : "workstations"}/${encodeURIComponent(id)}${query(base)}`),
        api(`/api/timeline${query({ ...idParam, ...dayQ })}`),
        api(`/api/metrics/timeseries${query({ ...dayQ, shift: base.shift, bucket: "hour", by, id })}`),
        api(`/api/metrics/timeseries${query({ from: trend.from.toISOString(), to: trend.to.toISOString(), site_id: base.site_id, shift: base.shift, bucket: "day", by, id })}`),
        // The chosen day's last events; twice the rows shown, since an opening
        // and its closing segment become one row.
        api(`/api/events/recent${query({ ...idParam, ...dayQ, limit: 2 * RECENT_ROWS })}`),
      ]);
      if (!this.subject || this.subject.id !== id) return;
      this.renderMetrics(kind, metrics);
      renderTimeline(this.dialog.querySelector("#timeline"), timeline, tz);
      renderSeries(this.dialog.querySelector("#chart-units"),
        hourly.map((p) => ({ t: Date.parse(p.bucket_start), v: p.units })),
        { label: "units", color: "#1f5fbf", tz, window: day, unit: "hour", missing: 0 });
      renderSeries(this.dialog.querySelector("#chart-util"),
        daily.map((p) => ({ t: Date.parse(p.bucket_start), v: p.utilization_percentage })),
        { label: "utilization %", color: "#2e7d32", max: 100, bars: false, tz, window: trend, unit: "day", missing: null });
      this.renderRecent(recent, tz);
    } catch (err) {
      this.onError(err);
    }
  }

  renderMetrics(kind, m) {
    const items = kind === "worker"
      ? [["Utilization", null, m.utilization_percentage, "util"], ["Active", null, m.total_active_time_hours, "hours"],
         ["Units", null, m.total_units_produced, "int"], ["Units / hour", null, m.units_per_hour, "rate"]]
      : [["Utilization", null, m.utilization_percentage, "util"], ["Occupied", null, m.occupancy_time_hours, "hours"],
         ["Units", null, m.total_units_produced, "int"], ["Throughput / hour", null, m.throughput_rate, "rate"]];
    this.dialog.querySelector("#drill-metrics").replaceChildren(...items.map(([label, unit, v, kindOf]) =>
      el("div", { class: "card" }, el("div", { class: "label", text: label }),
        el("div", { class: "value", "data-value": v },
          kindOf === "util" ? utilBar(v) : fmt[kindOf](v), unit ? el("span", { class: "unit", text: unit }) : null))));
  }

  renderRecent(events, tz) {
    const rows = recentRows(events, RECENT_ROWS);
    const head = el("thead", {}, el("tr", {}, ["Time", "Event", "Duration", "Worker", "Station", "Count", "Confidence", "Model", "Gateway"]
      .map((h, i) => el("th", { scope: "col", class: i < 5 || i > 6 ? "text" : null, text: h }))));
    const body = el("tbody", {}, rows.map(({ event: e, length }) => el("tr", { "data-event": e.event_id },
      el("td", { class: "text", text: timeOfDay(e.timestamp, tz), title: e.timestamp }),
      el("td", { class: "text", text: e.shadow ? `${e.event_type} (shadow)` : e.event_type }),
      el("td", { class: "text", "data-col": "duration", "data-value": e.duration_s ?? "", text: length }),
      el("td", { class: "text", text: e.worker_id }),
      el("td", { class: "text", text: e.station_id }),
      el("td", { text: e.event_type === "product_count" ? fmt.int(e.count) : "" }),
      el("td", { "data-value": e.confidence, text: e.confidence.toFixed(2) }),
      el("td", { class: "text", text: fmt.text(e.model_version) }),
      el("td", { class: "text", text: fmt.text(e.gateway_id) }))));
    if (rows.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: 9, text: "No events." })));
    this.dialog.querySelector("#recent").replaceChildren(head, body);
  }
}
