import { test } from "node:test";
import assert from "node:assert/strict";
import { between, when } from "../../../dashboard/static/js/alerts.js";
import { secondsSince, takeToken, targetText } from "../../../dashboard/static/js/andon.js";

test("an incident's length runs to its end, or to now while open", () => {
  assert.equal(between("2026-12-01T08:00:00Z", "2026-12-01T08:12:30Z"), 750);
  assert.equal(between("2026-12-01T08:00:00Z", null, Date.parse("2026-12-01T09:00:00Z")), 3600);
});

test("times read in the site's zone, with the date when not today", () => {
  const now = Date.parse("2026-12-01T20:00:00Z");
  assert.equal(when("2026-12-01T19:05:00Z", "UTC", now), "19:05");
  // In Auckland both are on 2 December (08:05 and 09:00): the same day there.
  assert.equal(when("2026-12-01T19:05:00Z", "Pacific/Auckland", now), "08:05");
  assert.equal(when("2026-11-30T19:05:00Z", "UTC", now), "30 Nov 19:05");
});

test("a token handed in the fragment is kept and leaves the address", () => {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const handed = takeToken({ hash: "#token=takt_abc", pathname: "/dashboard/andon", search: "?site=s1" }, storage, null);
  assert.deepEqual(handed, { token: "takt_abc", clean: "/dashboard/andon?site=s1" });
  const later = takeToken({ hash: "", pathname: "/dashboard/andon", search: "" }, storage, "signed-in");
  assert.deepEqual(later, { token: "takt_abc", clean: null });
  assert.equal(takeToken({ hash: "", pathname: "/", search: "" }, { getItem: () => null }, "signed-in").token, "signed-in");
});

test("how long in a state, and target texts", () => {
  assert.equal(secondsSince("2026-12-01T08:00:00Z", "2026-12-01T08:05:00Z"), 300);
  assert.equal(secondsSince(null, "2026-12-01T08:05:00Z"), null);
  assert.deepEqual(targetText(7, null), { text: "no target set", behind: false });
  assert.deepEqual(targetText(7, 10, "/h"), { text: "target 10/h", behind: true });
  assert.deepEqual(targetText(12, 10), { text: "target 10", behind: false });
});
