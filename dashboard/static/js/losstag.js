// Tagging lost time from the drill-down timeline (supervisors and admins): click an idle or
// absent segment, pick one of the site's reasons, save. Segments shorter than the site's
// threshold need no reason and offer none. Tags are time ranges of a station (docs/metrics.md).
import { ApiError, getToken, query } from "./api.js";
import { el, duration } from "./format.js";
import { clock } from "./time.js";

async function call(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: { Authorization: `Bearer ${getToken()}`, Accept: "application/json", "Content-Type": "application/json" },
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || response.statusText);
  return data;
}

export class LossTagger {
  constructor(dialog, filters, session) {
    this.filters = filters;
    this.timeline = dialog.querySelector("#timeline");
    if (session.role !== "supervisor" && session.role !== "admin") return;
    this.box = el("div", { id: "loss-tag", class: "loss-tag", hidden: true });
    this.timeline.after(this.box);
    this.timeline.addEventListener("click", (e) => {
      const seg = e.target.closest(".seg.idle, .seg.absent");
      if (seg) this.open(seg);
    });
    dialog.addEventListener("close", () => { this.box.hidden = true; });
  }

  async open(seg) {
    const site = this.filters.siteForCalendar();
    const tz = this.filters.timezone();
    const { start, end, station, worker, state } = seg.dataset;
    const seconds = (Date.parse(end) - Date.parse(start)) / 1000;
    const what = `${state} ${clock(tz, new Date(start))}–${clock(tz, new Date(end))} (${duration(seconds)}) at ${station}`;
    this.box.hidden = false;
    let reasons;
    try {
      reasons = await call(`/api/v1/reasons${query({ site_id: site })}`);
    } catch (err) {
      this.box.replaceChildren(el("p", { role: "status", text: `Reasons unavailable (${err.message}).` }));
      return;
    }
    if (seconds < reasons.untagged_threshold_s) {
      this.box.replaceChildren(el("p", { role: "status",
        text: `${what}: shorter than ${duration(reasons.untagged_threshold_s)}, needs no reason.` }));
      return;
    }
    const select = el("select", { id: "loss-reason", required: true },
      reasons.reasons.map((r) => el("option", { value: r.reason_id, text: r.label })));
    const status = el("p", { role: "status" });
    const form = el("form", { "aria-label": "Tag lost time" },
      el("p", { text: `Tag ${what}` }),
      el("label", { for: "loss-reason", text: "Reason" }), select,
      el("button", { type: "submit", text: "Save reason" }), status);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const tag = await call("/api/v1/loss-tags", { method: "POST", body: JSON.stringify(
          { station_id: station, worker_id: worker === "unknown" ? null : worker, from: start, to: end, reason_id: Number(select.value) }) });
        status.textContent = `Tagged ${tag.reason_code} by ${tag.tagged_by}.`;
      } catch (err) {
        status.textContent = `Not tagged: ${err.message}`;
      }
    });
    this.box.replaceChildren(reasons.reasons.length ? form
      : el("p", { role: "status", text: `Site ${site} has no reasons yet.` }));
  }
}
