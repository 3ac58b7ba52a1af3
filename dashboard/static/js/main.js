// Composition root of the page: login, filters, summary cards, tables,
// gateway panel, drill-down and the live stream.
import { api, ApiError, clearToken, getToken, query, setToken, setUnauthorizedHandler } from "./api.js";
import { el, fmt, utilBar } from "./format.js";
import { Filters } from "./filters.js";
import { DataTable } from "./table.js";
import { DrillDown } from "./drill.js";
import { renderGateways } from "./gateways.js";
import { renderDriftFlags, renderModels } from "./models.js";
import { LiveStream } from "./live.js";
import { AlertsPanel } from "./alerts.js";
import { ShiftPanel } from "./shift.js";
import { LossTagger } from "./losstag.js";
import { applyPrivacy } from "./privacy.js";
import { TARGET_FIGURES, whyMissing } from "./figures.js";

const $ = (sel) => document.querySelector(sel);

const WORKER_COLUMNS = [
  { key: "name", label: "Worker", kind: "text" },
  { key: "worker_id", label: "ID", kind: "text" },
  { key: "utilization_percentage", label: "Utilization", kind: "util" },
  { key: "total_active_time_hours", label: "Active", kind: "hours" },
  { key: "total_idle_time_hours", label: "Idle", kind: "hours" },
  { key: "total_absent_time_hours", label: "Absent", kind: "hours" },
  { key: "total_units_produced", label: "Units", kind: "int" },
  { key: "units_per_hour", label: "Units / h", kind: "rate" },
  { key: "event_count", label: "Events", kind: "int" },
];
const STATION_COLUMNS = [
  { key: "name", label: "Workstation", kind: "text" },
  { key: "station_id", label: "ID", kind: "text" },
  { key: "type", label: "Type", kind: "text" },
  { key: "utilization_percentage", label: "Utilization", kind: "util" },
  { key: "occupancy_time_hours", label: "Occupied", kind: "hours" },
  { key: "total_units_produced", label: "Units", kind: "int" },
  // Target vs actual: what the targets in force ask for in the planned production time.
  ...TARGET_FIGURES.map((f) => ({ ...f, label: f.unit ? `${f.label} ${f.unit}` : f.label, why: (row) => whyMissing(f.key, row) })),
  { key: "throughput_rate", label: "Units / h", kind: "rate" },
  { key: "event_count", label: "Events", kind: "int" },
];
const WITHHELD = "withheld: about fewer people than the minimum group size";

// A figure about fewer than k people answers 403 "withheld" to readers without the
// per-person right (docs/metrics.md, "Minimum group size"): its cards read "—" and
// the rest of the page still shows.
function orWithheld(request) {
  return request.catch((err) => {
    if (err instanceof ApiError && err.status === 403 && /withheld/.test(err.detail)) return {};
    throw err;
  });
}

// A card; a missing value reads "—" with `why` as its tooltip.
function card(key, label, value, kind, unit, why, note) {
  const missing = value === null || value === undefined;
  return el("div", { class: "card", "data-metric": key },
    el("div", { class: "label", text: label }),
    el("div", { class: "value", "data-value": value ?? "", title: missing ? why : null },
      missing ? "—" : kind === "util" ? utilBar(value) : fmt[kind](value),
      unit && !missing ? el("span", { class: "unit", text: unit }) : null),
    note ? el("div", { class: "note", text: note }) : null);
}

// Target units, availability and performance of a station (or the factory's `targets`).
// The factory's target units say how many units were made against them: those of the
// stations with a target, in the planned production time (`units_in_planned_time`).
function targetCards(prefix, row, withheld) {
  return TARGET_FIGURES.map((f) => card(f.key, prefix ? `${prefix}${f.label.toLowerCase()}` : f.label, row ? row[f.key] : null, f.kind, f.unit ? ` ${f.unit}` : null,
    withheld ? WITHHELD : whyMissing(f.key, row),
    f.key === "target_units" && row && row.units_in_planned_time !== undefined ? `${fmt.int(row.units_in_planned_time)} made against it` : null));
}

class Dashboard {
  constructor(session) {
    this.session = session;
    this.filters = new Filters($("#filters"), session, () => {
      this.refreshNumbers();
      this.refreshModels();
      if (this.alerts) this.alerts.setSite(this.filters.params().site_id);
    });
    this.workers = new DataTable($("#workers"), {
      columns: WORKER_COLUMNS, idKey: "worker_id", searchInput: $("#worker-search"),
      emptyText: "No worker activity in this window.", sort: { key: "utilization_percentage", dir: "descending" },
      onOpen: (row) => this.drill.open("worker", row),
    });
    this.stations = new DataTable($("#stations"), {
      columns: STATION_COLUMNS, idKey: "station_id", searchInput: $("#station-search"),
      emptyText: "No workstation activity in this window.", sort: { key: "utilization_percentage", dir: "descending" },
      onOpen: (row) => this.drill.open("station", row),
    });
    this.drill = new DrillDown($("#drill"), this.filters, (err) => this.notice(err));
    this.shift = new ShiftPanel($("#shift-panel"), this.filters, session);
    this.tagger = new LossTagger($("#drill"), this.filters, session);
    this.busy = null;
    this.again = false;
    this.timer = null;
  }

  notice(err) {
    const box = $("#notice");
    if (!err) { box.hidden = true; return; }
    box.textContent = err instanceof ApiError ? `The API answered ${err.status}: ${err.detail}` : `Cannot reach the API (${err.message}).`;
    box.hidden = false;
  }

  async start() {
    const seed = $("#seed");
    seed.hidden = this.session.role !== "admin";
    seed.addEventListener("click", () => this.seed());
    $("#role").textContent = this.session.role;
    applyPrivacy(document, this.session);
    try {
      const stations = await api("/api/workstations");
      this.filters.setStations(stations);
      await this.shift.setChoices(stations);
    } catch (err) { this.notice(err); }
    await Promise.all([this.refreshNumbers(), this.refreshGateways(), this.refreshModels()]);
    this.alerts = new AlertsPanel($("#alerts"), this.session);
    this.alerts.setSite(this.filters.params().site_id);
    this.live = new LiveStream("/api/live", getToken(), {
      onState: (state) => {
        const live = $("#live");
        live.dataset.state = state;
        live.textContent = { on: "Live", retry: "Reconnecting…", off: "Offline" }[state];
      },
      onChange: (changed) => this.changed(changed),
    });
    this.live.start();
  }

  // Coalesce bursts of change notifications into one refetch at a time.
  changed(changed) {
    if (changed.has("gateways")) this.refreshGateways();
    if (!changed.has("events") && !changed.has("metrics")) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.refreshNumbers();
      this.refreshModels();
      if (this.drill.isOpen()) this.drill.refresh();
    }, 250);
  }

  async refreshNumbers() {
    if (this.busy) { this.again = true; return this.busy; }
    this.busy = this.loadNumbers().finally(() => {
      this.busy = null;
      if (this.again) { this.again = false; this.refreshNumbers(); }
    });
    return this.busy;
  }

  async loadNumbers() {
    const p = this.filters.params();
    const station = this.filters.stationId();
    // "Events today" counts the site's day (its calendar's time zone), not the browser's.
    const day = this.filters.today();
    const today = { from: day.from.toISOString(), to: day.to.toISOString(), site_id: p.site_id };
    try {
      const [factory, workers, stations, now, todayFactory, atStation] = await Promise.all([
        orWithheld(api(`/api/metrics/factory${query(p)}`)),
        this.session.per_person ? api(`/api/metrics/workers${query(p)}`) : [],
        api(`/api/metrics/workstations${query(p)}`),
        api(`/api/now${query({ site_id: p.site_id })}`),
        orWithheld(api(`/api/metrics/factory${query(today)}`)),
        station && this.session.per_person ? api(`/api/stations/${encodeURIComponent(station)}/workers${query({ from: p.from, to: p.to, site_id: p.site_id })}`) : null,
      ]);
      this.renderCards(factory, station ? stations.find((s) => s.station_id === station) : null, now, todayFactory);
      this.workers.setKeep(atStation ? new Set(atStation) : null);
      this.stations.setKeep(station ? new Set([station]) : null);
      this.workers.setRows(workers);
      this.stations.setRows(stations);
      this.shift.refresh();
      // What the numbers on screen were fetched with (tests and support read it).
      document.body.dataset.query = query(p);
      document.body.dataset.loaded = String(Date.now());
      this.notice(null);
    } catch (err) {
      this.notice(err);
    }
  }

  renderCards(f, station, now, today) {
    const cards = station ? [
      card("occupancy_time_hours", `${station.name}: occupied`, station.occupancy_time_hours, "hours"),
      card("total_units_produced", `${station.name}: units`, station.total_units_produced, "int"),
      ...targetCards(`${station.name}: `, station, false).slice(0, 1),
      card("throughput_rate", `${station.name}: units / hour`, station.throughput_rate, "rate"),
      card("utilization_percentage", `${station.name}: utilization`, station.utilization_percentage, "util"),
      ...targetCards(`${station.name}: `, station, false).slice(1),
    ] : [
      card("total_productive_time_hours", "Productive time", f.total_productive_time_hours, "hours"),
      card("total_production_count", "Units produced", f.total_production_count, "int"),
      ...targetCards("", f.targets ?? null, f.total_production_count === undefined).slice(0, 1),
      card("average_production_rate", "Units / hour", f.average_production_rate, "rate"),
      card("average_utilization_percentage", "Average utilization", f.average_utilization_percentage, "util"),
      ...targetCards("", f.targets ?? null, f.total_production_count === undefined).slice(1),
    ];
    cards.push(card("active_workers", "Working now", now.active_workers, "int"));
    cards.push(card("events_today", "Events today", today.total_events, "int"));
    $("#cards").replaceChildren(...cards);
  }

  // The ML team's view: every metric per model version (production and shadow) for the
  // selected window, confidence quantiles per version, and the drift check's active flags.
  async refreshModels() {
    const p = this.filters.params();
    const window = { from: p.from, to: p.to, site_id: p.site_id };
    try {
      const [breakdown, confidence, flags] = await Promise.all([
        api(`/api/metrics/models${query(p)}`),
        api(`/api/models/confidence${query({ ...window, group: "model" })}`),
        api("/api/models/drift/flags"),
      ]);
      renderModels($("#models"), breakdown, confidence);
      renderDriftFlags($("#drift-flags"), flags);
    } catch (err) {
      $("#drift-flags").replaceChildren(el("p", { class: "empty", text: `Model versions unavailable (${err.message}).` }));
    }
  }

  async refreshGateways() {
    const box = $("#gateways");
    try {
      renderGateways(box, await api("/api/gateways"));
    } catch (err) {
      const text = err instanceof ApiError && err.status === 403 ? "Gateway health needs the supervisor role." : `Gateway health unavailable (${err.message}).`;
      box.replaceChildren(el("p", { class: "empty", text }));
    }
  }

  async seed() {
    const button = $("#seed");
    button.disabled = true;
    button.textContent = "Loading demo data…";
    try {
      await api("/api/seed", { method: "POST" });
      // The demo data covers the two days before today.
      this.filters.setRange("7d");
      this.filters.setStations(await api("/api/workstations"));
      await Promise.all([this.refreshNumbers(), this.refreshModels()]);
    } catch (err) {
      this.notice(err);
    } finally {
      button.disabled = false;
      button.textContent = "Load demo data";
    }
  }
}

async function signIn(token) {
  return api("/api/session", { token });
}

async function boot() {
  // Only a stored token that stopped working signs out; a mistyped one just shows an error.
  setUnauthorizedHandler(() => { if (getToken()) { clearToken(); location.reload(); } });
  $("#logout").addEventListener("click", () => { clearToken(); location.reload(); });
  const token = getToken();
  if (token) {
    try {
      const session = await signIn(token);
      $("#app").hidden = false;
      await new Dashboard(session).start();
      return;
    } catch { clearToken(); }
  }
  $("#login").hidden = false;
  $("#login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = $("#token").value.trim();
    try {
      const session = await signIn(value);
      setToken(value, $("#remember").checked);
      $("#login").hidden = true;
      $("#app").hidden = false;
      await new Dashboard(session).start();
    } catch (err) {
      $("#login-error").textContent = err instanceof ApiError && err.status === 401 ? "That token is not valid." : `Sign-in failed: ${err.message}`;
    }
  });
}

boot();
