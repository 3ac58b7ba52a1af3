// Rows of the "Recent events" table. Pure (no DOM); tested with `node --test`.
//
// The edge agent opens a state with a state change (`duration_s: 0`) and closes
// it later with a segment at the same timestamp that carries the state's length.
// Shown as they are stored, both look alike: one state twice at the same second.
// Here a state is one row: the closing segment (with its duration) replaces its
// opening; an opening not closed yet is one row marked "started".
import { duration } from "./format.js";

export const STATES = new Set(["working", "idle", "absent"]);

function key(e) {
  return [e.worker_id, e.station_id, e.event_type, e.timestamp, e.shadow, e.model_version ?? ""].join("|");
}

// events: newest first, as GET /api/events/recent answers. Returns at most `limit`
// rows, each {event, length}: length is the text of the Duration column.
export function recentRows(events, limit = Infinity) {
  const closed = new Set(events.filter((e) => STATES.has(e.event_type) && e.duration_s > 0).map(key));
  const rows = [];
  for (const e of events) {
    if (rows.length >= limit) break;
    if (!STATES.has(e.event_type)) { rows.push({ event: e, length: "" }); continue; }
    if (e.duration_s === 0) {
      if (closed.has(key(e))) continue; // its segment's row says it all
      rows.push({ event: e, length: "started" });
      continue;
    }
    rows.push({ event: e, length: e.duration_s === null || e.duration_s === undefined ? "—" : duration(e.duration_s) });
  }
  return rows;
}
