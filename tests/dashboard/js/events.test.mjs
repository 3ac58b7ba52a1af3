import { test } from "node:test";
import assert from "node:assert/strict";
import { recentRows } from "../../../dashboard/static/js/events.js";

const ev = (id, type, ts, duration_s, extra = {}) => ({
  event_id: id, event_type: type, timestamp: ts, duration_s, worker_id: "W1", station_id: "S1",
  shadow: false, model_version: "m@1", count: 0, ...extra,
});

test("an opening state change and its closing segment are one row with the duration", () => {
  const rows = recentRows([
    ev("c", "product_count", "2026-12-01T08:20:00Z", null, { count: 3 }),
    ev("b2", "idle", "2026-12-01T08:12:00Z", 0),
    ev("a2", "working", "2026-12-01T08:00:00Z", 720),
    ev("a1", "working", "2026-12-01T08:00:00Z", 0),
  ]);
  assert.deepEqual(rows.map((r) => [r.event.event_id, r.length]), [["c", ""], ["b2", "started"], ["a2", "12 min"]]);
});

test("a shadow model's segment does not hide the production opening", () => {
  const rows = recentRows([
    ev("s", "working", "2026-12-01T08:00:00Z", 60, { shadow: true }),
    ev("p", "working", "2026-12-01T08:00:00Z", 0),
  ]);
  assert.deepEqual(rows.map((r) => r.length), ["1 min", "started"]);
});

test("the row limit counts rows, not events", () => {
  const events = [];
  for (let i = 0; i < 10; i++) {
    const ts = new Date(Date.UTC(2026, 11, 1, 8, 50 - i)).toISOString();
    events.push(ev(`seg${i}`, "working", ts, 60), ev(`open${i}`, "working", ts, 0));
  }
  assert.equal(recentRows(events, 5).length, 5);
  assert.equal(recentRows(events).length, 10);
});
