// State bands of one day: each segment is placed by percentage of the window.
// Times and hour ticks are the site's (tz), whatever the browser's time zone.
import { el, duration } from "./format.js";
import { clock } from "./time.js";

export function renderTimeline(container, { from, to, segments }, tz) {
  const lo = Date.parse(from), hi = Date.parse(to), span = hi - lo;
  const nodes = [];
  const totals = { working: 0, idle: 0, absent: 0 };
  for (const s of segments) {
    const a = Math.max(Date.parse(s.start), lo), b = Math.min(Date.parse(s.end), hi);
    if (b <= a) continue;
    totals[s.state] = (totals[s.state] || 0) + (b - a) / 1000;
    const seg = el("div", {
      class: `seg ${s.state}${s.open ? " open" : ""}`,
      "data-state": s.state,
      // What tagging a loss needs (losstag.js): the segment's time range, station and worker.
      "data-start": new Date(a).toISOString(), "data-end": new Date(b).toISOString(),
      "data-station": s.station_id, "data-worker": s.worker_id,
      title: `${s.state} ${clock(tz, new Date(a), { seconds: true })}–${clock(tz, new Date(b), { seconds: true })}` +
        ` (${duration((b - a) / 1000)}${s.open ? ", ongoing" : ""}) · worker ${s.worker_id} · station ${s.station_id}`,
    });
    seg.style.left = `${((a - lo) / span) * 100}%`;
    // At least a hairline, so a short state stays visible.
    seg.style.width = `max(1px, ${((b - a) / span) * 100}%)`;
    nodes.push(seg);
  }
  for (let h = 0; h <= 24; h += 3) {
    const t = lo + h * 3600000;
    if (t > hi) break;
    const tick = el("span", { class: "tick", text: t === hi ? "24:00" : clock(tz, new Date(t)) });
    tick.style.left = `${((t - lo) / span) * 100}%`;
    nodes.push(tick);
  }
  container.replaceChildren(...nodes);
  container.dataset.segments = String(nodes.filter((n) => n.classList.contains("seg")).length);
  container.setAttribute("aria-label", segments.length === 0 ? "No states recorded this day"
    : `Working ${duration(totals.working)}, idle ${duration(totals.idle)}, absent ${duration(totals.absent)}`);
}
