// Gateway health: online/offline from the retained status topic, backlog, fps, model.
import { el, ago, duration, fmt } from "./format.js";

function row(label, value) {
  return [el("dt", { text: label }), el("dd", { text: value })];
}

export function renderGateways(container, gateways, now = Date.now()) {
  if (gateways.length === 0) {
    container.replaceChildren(el("p", { class: "empty", text: "No gateway has reported yet." }));
    return;
  }
  container.replaceChildren(...gateways.map((g) => {
    const s = g.status || {};
    const state = ["online", "offline"].includes(g.state) ? g.state : "unknown";
    return el("article", { class: "gateway", "data-gateway": g.gateway_id, "data-state": state },
      el("h3", {},
        el("span", { text: g.gateway_id }),
        el("span", {},
          s.replaying ? el("span", { class: "badge replaying", text: "replaying backlog" }) : null,
          " ",
          el("span", { class: `badge ${state}`, text: state }))),
      el("dl", {},
        row("Site", fmt.text(g.site_id)),
        row("Last seen", ago(g.last_seen, now)),
        row("Backlog", s.backlog === undefined ? "—" : `${fmt.int(s.backlog)} events`),
        row("Oldest buffered", s.oldest_buffered_age_s === undefined || s.oldest_buffered_age_s === null ? "—" : duration(s.oldest_buffered_age_s)),
        row("FPS", s.fps === undefined || s.fps === null ? "—" : fmt.rate(s.fps)),
        row("Camera", fmt.text(s.camera_state)),
        row("Model", fmt.text(s.model_version))));
  }));
}
