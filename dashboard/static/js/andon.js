// The andon wallboard: /dashboard/andon?site=…|line=… with a kiosk token (or a signed-in
// dashboard token). Polls GET /api/v1/andon every few seconds; everything shown comes from it.
import { api, ApiError, getToken, query } from "./api.js";
import { duration, el, fmt } from "./format.js";
import { clock } from "./time.js";

const KIOSK_KEY = "takt.kiosk";
const POLL_MS = 2000;
const STATE_WORDS = { working: "Working", idle: "Idle", absent: "Absent", unknown: "No data" };

// A token handed over in the fragment (#token=…, never sent to the server) is kept on this
// screen and removed from the address bar.
export function takeToken(location, storage, fallback) {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const handed = hash.get("token");
  if (handed) {
    storage.setItem(KIOSK_KEY, handed);
    return { token: handed, clean: location.pathname + location.search };
  }
  return { token: storage.getItem(KIOSK_KEY) || fallback, clean: null };
}

// Seconds a station has been in its state, from the answer's own clock.
export function secondsSince(since, at) {
  if (!since) return null;
  return Math.max(0, (Date.parse(at) - Date.parse(since)) / 1000);
}

export function targetText(actual, target, unit = "") {
  if (target === null || target === undefined) return { text: "no target set", behind: false };
  return { text: `target ${fmt.int(target)}${unit}`, behind: actual < target };
}

function $(sel) { return document.querySelector(sel); }

function render(board) {
  const scope = board.line_id ? `Line ${board.line_id}` : `Site ${board.site_id}`;
  $("#scope").textContent = scope;
  document.title = `Takt · Andon · ${scope}`;
  $("#clock").textContent = clock(board.timezone, new Date(board.at));
  $("#units-today").textContent = fmt.int(board.actual.units_today);
  $("#units-hour").textContent = fmt.int(board.actual.units_per_hour);
  for (const [id, actual, target, unit] of [
    ["#target-today", board.actual.units_today, board.target.units_today, ""],
    // What the targets ask for in the last hour's planned time, beside the units made in it.
    ["#target-hour", board.actual.units_per_hour, board.target.units_per_hour, ""],
  ]) {
    const t = targetText(actual, target, unit);
    $(id).textContent = t.text;
    $(id).classList.toggle("behind", t.behind);
  }
  const alerted = new Set(board.incidents.map((i) => i.details && i.details.station_id).filter(Boolean));
  const tiles = board.stations.map((s) => {
    const seconds = secondsSince(s.since, board.at);
    return el("article", { class: "station", "data-station": s.station_id, "data-state": s.state, "data-alert": alerted.has(s.station_id) },
      el("h3", { text: s.name || s.station_id }),
      el("div", { class: "state", text: STATE_WORDS[s.state] || s.state }),
      el("div", { class: "for", text: seconds === null ? "" : `for ${duration(seconds)}` }),
      el("div", { class: "units", text: `${fmt.int(s.units_today)} ${s.units_today === 1 ? "unit" : "units"} today` }));
  });
  $("#stations").replaceChildren(...(tiles.length ? tiles : [el("p", { class: "empty", text: "No station has reported yet." })]));
  const items = board.incidents.map((i) => el("li", { "data-incident": i.id, "data-status": i.status },
    el("span", { text: i.summary }),
    el("span", { class: "meta", text: `${i.status === "acknowledged" ? "acknowledged · " : ""}open ${duration(secondsSince(i.started_at, board.at))}` })));
  $("#incidents").replaceChildren(...(items.length ? items : [el("li", { class: "none", text: "None" })]));
}

async function poll(path, token) {
  const updated = $("#updated");
  try {
    const board = await api(path, { token });
    render(board);
    $("#andon-error").hidden = true;
    updated.textContent = "live";
    updated.classList.remove("stale");
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    const box = $("#andon-error");
    box.textContent = err instanceof ApiError && (err.status === 401 || err.status === 403)
      ? "This screen needs a kiosk token: open /dashboard/andon#token=… (takt api token create --role kiosk)."
      : `Cannot reach the API (${err.message}); showing the last figures.`;
    box.hidden = false;
    updated.textContent = "not updating";
    updated.classList.add("stale");
  }
  setTimeout(() => poll(path, token), POLL_MS);
}

function boot() {
  const { token, clean } = takeToken(window.location, localStorage, getToken());
  if (clean) window.history.replaceState(null, "", clean);
  const params = new URLSearchParams(window.location.search);
  const path = `/api/v1/andon${query({ site_id: params.get("site"), line: params.get("line") })}`;
  if (!token) {
    const box = $("#andon-error");
    box.textContent = "This screen needs a kiosk token: open /dashboard/andon#token=… (takt api token create --role kiosk).";
    box.hidden = false;
    return;
  }
  poll(path, token);
}

if (typeof document !== "undefined") boot();
