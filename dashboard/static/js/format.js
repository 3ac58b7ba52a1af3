// Display formats; the raw API value is kept in data-value next to each one.
// No DOM at import time: `node --test` (tests/dashboard/js/) imports this module.
import { clock } from "./time.js";

const nf1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

// A length of time with its unit: seconds below a minute, whole minutes below
// an hour ("12 min"), hours with one decimal from there ("1.5 h").
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${nf1.format(seconds / 3600)} h`;
}

// An amount of hours from the API (e.g. total_active_time_hours), with its unit:
// "0 min", "< 1 min", "12 min", "1.5 h". Never "0.0 h" for a short stint.
export function hours(h) {
  if (h === null || h === undefined) return "—";
  if (h <= 0) return "0 min";
  const minutes = Math.round(h * 60);
  if (minutes === 0) return "< 1 min";
  if (minutes < 60) return `${minutes} min`;
  return `${nf1.format(h)} h`;
}

export const fmt = {
  hours,
  pct: (v) => nf1.format(v),
  int: (v) => nf0.format(v),
  rate: (v) => nf1.format(v),
  text: (v) => (v === null || v === undefined ? "—" : String(v)),
};

export function utilClass(pct) {
  if (pct >= 75) return "good";
  if (pct >= 50) return "fair";
  return "poor";
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// A utilization bar; widths are set through the CSSOM because the page's
// Content-Security-Policy forbids inline style attributes.
export function utilBar(pct) {
  const fill = el("i", { class: utilClass(pct) });
  fill.style.width = `${Math.max(0, Math.min(100, pct))}%`;
  return el("span", { class: "util" },
    el("span", { text: `${fmt.pct(pct)} %` }),
    el("span", { class: "bar", role: "presentation" }, fill));
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// "14:05:09" in the site's time zone.
export function timeOfDay(iso, tz) {
  return clock(tz, new Date(iso), { seconds: true });
}
