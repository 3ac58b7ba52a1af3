// uPlot charts (vendored: fast with thousands of points, no dependencies).
//
// A chart's time axis spans exactly the window it shows (the day, or the trend
// window), in the site's time zone: the x scale is fixed to [from, to] and each
// bucket of that window has a value (0 where no unit was made, a gap where a
// ratio has no data), instead of letting uPlot guess a range from the points.
import uPlot from "../vendor/uPlot.esm.js";
import { buckets, clock, fillBuckets, shortDate } from "./time.js";

const charts = new Map();

function width(container) {
  return Math.max(280, container.clientWidth || 500);
}

// points: [{t: ms, v: number}] from the API; window: {from: Date, to: Date};
// unit: "hour" or "day" (the buckets of the window); missing: 0 or null.
export function renderSeries(container, points, { label, color, max, bars = true, tz, window, unit, missing }) {
  charts.get(container)?.destroy();
  const starts = buckets(tz, window.from, window.to, unit);
  const end = window.to.getTime();
  const values = fillBuckets(starts, end, points, missing);
  // uPlot's time scale is in seconds. A bucket is drawn at its middle, so that
  // the bars (or points) of the first and last bucket lie inside the window.
  const xs = starts.map((t, i) => ((t + (i + 1 < starts.length ? starts[i + 1] : end)) / 2) / 1000);
  const lo = window.from.getTime() / 1000, hi = end / 1000;
  const tickLabel = unit === "hour" ? (s) => clock(tz, new Date(s * 1000)) : (s) => shortDate(tz, new Date(s * 1000));
  const opts = {
    width: width(container),
    height: 200,
    legend: { show: true },
    // Ticks fall on the site's hours and midnights, not the browser's.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
    scales: {
      x: { time: true, range: () => [lo, hi] },
      y: { range: (_u, _lo, top) => [0, max ?? Math.max(1, (top ?? 0) * 1.1)] },
    },
    series: [
      { value: (_u, s) => (s === null || s === undefined ? "—" : unit === "hour"
        ? `${clock(tz, new Date((s - 1800) * 1000))}–${clock(tz, new Date((s + 1800) * 1000))}`
        : shortDate(tz, new Date(s * 1000))) },
      bars
        ? { label, stroke: color, fill: `${color}33`, width: 2, paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }
        : { label, stroke: color, width: 2, spanGaps: false, points: { show: true, size: 7 } },
    ],
    axes: [{ values: (_u, splits) => splits.map(tickLabel) }, { size: 44 }],
  };
  const chart = new uPlot(opts, [xs, values], container);
  container.dataset.points = String(points.length);
  container.dataset.buckets = String(starts.length);
  // The instance, for the end-to-end tests (they read its scales and tick labels).
  container.uplot = chart;
  charts.set(container, chart);
}

window.addEventListener("resize", () => {
  for (const [container, chart] of charts) chart.setSize({ width: width(container), height: 200 });
});
