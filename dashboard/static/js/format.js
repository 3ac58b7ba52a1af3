// Display formats; the raw API value is kept in data-value next to each one.
const nf1 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export const fmt = {
  hours: (v) => nf1.format(v),
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

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${nf1.format(seconds / 3600)} h`;
}

export function timeOfDay(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
