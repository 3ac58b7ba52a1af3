// uPlot charts (vendored: fast with thousands of points, no dependencies).
import uPlot from "../vendor/uPlot.esm.js";

const charts = new Map();

function width(container) {
  return Math.max(280, container.clientWidth || 500);
}

// One bar-like series over time; `points` are [{t: ms, v: number}].
export function renderSeries(container, points, { label, color, max, bars = true }) {
  charts.get(container)?.destroy();
  const data = [points.map((p) => p.t / 1000), points.map((p) => p.v)];
  const opts = {
    width: width(container),
    height: 200,
    legend: { show: true },
    scales: { x: { time: true }, y: { range: (_u, lo, hi) => [0, max ?? Math.max(1, hi * 1.1)] } },
    series: [
      {},
      bars
        ? { label, stroke: color, fill: `${color}33`, width: 2, paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } }
        : { label, stroke: color, width: 2, points: { show: true, size: 7 } },
    ],
    axes: [{}, { size: 44 }],
  };
  const chart = new uPlot(opts, data, container);
  container.dataset.points = String(points.length);
  charts.set(container, chart);
}

window.addEventListener("resize", () => {
  for (const [container, chart] of charts) chart.setSize({ width: width(container), height: 200 });
});
