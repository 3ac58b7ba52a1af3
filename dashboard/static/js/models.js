// Model versions panel: every metric per model_version (production and shadow),
// confidence quantiles per version, and the drift check's active flags.
import { el, fmt } from "./format.js";

const nf3 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 3 });

function cell(col, value, kind) {
  const text = value === null || value === undefined ? "—" : kind === "num" ? nf3.format(value) : fmt[kind](value);
  return el("td", { "data-col": col, "data-value": value ?? "", class: kind === "text" ? "text" : null, text });
}

// confidence: rows of GET /api/models/confidence?group=model, keyed by version and shadow flag.
export function renderModels(table, breakdown, confidence) {
  const conf = new Map(confidence.map((c) => [`${c.model_version}|${c.shadow}`, c]));
  const head = el("thead", {}, el("tr", {},
    ...["Model version", "Role", "Events", "Units", "Working", "Idle", "Absent", "Utilization %",
      "Units / working h", "Mean conf.", "p10", "p50", "p90"].map((t, i) => el("th", { scope: "col", class: i < 2 ? "text" : null, text: t }))));
  if (breakdown.length === 0) {
    table.replaceChildren(head, el("tbody", {}, el("tr", {}, el("td", { colspan: 13, class: "empty", text: "No events in this window." }))));
    return;
  }
  const rows = breakdown.map((m) => {
    const c = conf.get(`${m.model_version}|${m.shadow}`) || { quantiles: {} };
    return el("tr", { "data-model": m.model_version, "data-shadow": String(m.shadow) },
      cell("model_version", m.model_version || "(none)", "text"),
      el("td", { class: "text" }, el("span", { class: `badge ${m.shadow ? "shadow" : "production"}`, text: m.shadow ? "shadow" : "production" })),
      cell("event_count", m.event_count, "int"), cell("total_units", m.total_units, "int"),
      cell("working_hours", m.working_hours, "hours"), cell("idle_hours", m.idle_hours, "hours"),
      cell("absent_hours", m.absent_hours, "hours"),
      cell("utilization_percentage", m.utilization_percentage, "pct"),
      cell("units_per_working_hour", m.units_per_working_hour, "rate"),
      cell("mean_confidence", m.mean_confidence, "num"),
      cell("p10", c.quantiles["0.1"], "num"), cell("p50", c.quantiles["0.5"], "num"), cell("p90", c.quantiles["0.9"], "num"));
  });
  table.replaceChildren(head, el("tbody", {}, ...rows));
}

const METRIC_NAMES = {
  confidence_psi: "confidence distribution shifted (PSI)",
  confidence_quantile_shift: "confidence quantile moved",
  state_mix_psi: "working/idle/absent mix shifted (PSI)",
};

export function renderDriftFlags(box, flags) {
  if (flags.length === 0) {
    box.replaceChildren(el("p", { class: "empty", text: "No active drift flags." }));
    return;
  }
  box.replaceChildren(el("ul", { class: "flags" }, ...flags.map((f) =>
    el("li", { "data-subject": `${f.subject_kind}:${f.subject_id}`, "data-metric": f.metric },
      el("span", { class: "badge drift", text: "drift" }), " ",
      el("strong", { text: `${f.subject_kind} ${f.subject_id}` }),
      `: ${METRIC_NAMES[f.metric] || f.metric} ${nf3.format(f.value)} (threshold ${nf3.format(f.threshold)})`))));
}
