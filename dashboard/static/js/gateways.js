// Gateway health: online/offline from the retained status topic, backlog, fps, model,
// and each camera's view (ok, moved, covered, blurred, frozen: docs/edge-agent.md).
import { el, ago, duration, fmt } from "./format.js";

const VIEW_TEXT = {
  ok: "view ok",
  moved: "view moved",
  covered: "view covered",
  blurred: "view out of focus",
  frozen: "picture frozen",
};

// How often the detector sees the camera (motion-gated detection): its runs per second and,
// when the agent reports its detector overloaded, how old the detections it relies on got.
function detectorSpan(c) {
  if (typeof c.detect_fps !== "number") return null;
  const text = `detector ${fmt.rate(c.detect_fps)}/s`;
  if (!c.detector_overloaded) return el("span", { class: "detector", text });
  const lag = typeof c.detection_age_max_s === "number" ? `, detections up to ${duration(c.detection_age_max_s)} old` : "";
  return el("span", { class: "detector overloaded", text: `${text}: overloaded${lag}` });
}

// One line per camera of the status message: its id, fps, detector rate and view health. A
// view that is not ok means its stations report nothing (an outage, not absence).
function cameraRows(cameras, now) {
  return cameras.map((c) => {
    const view = c.health ? c.health.state : null;
    const bad = view !== null && view !== "ok";
    const since = bad && c.health.since ? ` for ${duration(Math.max(0, (now - Date.parse(c.health.since)) / 1000))}` : "";
    return el("li", { class: "camera", "data-camera": c.camera_id, "data-view": view ?? "unchecked" },
      el("span", { text: c.camera_id }),
      el("span", { text: c.fps === undefined || c.fps === null ? "—" : `${fmt.rate(c.fps)} fps` }),
      el("span", {
        class: `badge ${bad ? "view-wrong" : view === "ok" ? "online" : "unknown"}`,
        text: view === null ? "view not checked" : `${VIEW_TEXT[view] ?? view}${since}`,
      }),
      detectorSpan(c));
  });
}

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
        row("Model", fmt.text(s.model_version))),
      Array.isArray(s.cameras) && s.cameras.length > 0
        ? el("ul", { class: "cameras", "aria-label": `Cameras of ${g.gateway_id}` }, cameraRows(s.cameras, now))
        : null);
  }));
}
