import { test } from "node:test";
import assert from "node:assert/strict";
import {
  addDays, buckets, dateString, dayWindow, fillBuckets, startOfDay, zonedMidnight,
} from "../../../dashboard/static/js/time.js";

const iso = (d) => d.toISOString();

test("a site's midnight, whatever the machine's time zone", () => {
  assert.equal(iso(zonedMidnight("UTC", 2026, 12, 1)), "2026-12-01T00:00:00.000Z");
  assert.equal(iso(zonedMidnight("America/Chicago", 2026, 12, 1)), "2026-12-01T06:00:00.000Z");
  assert.equal(iso(zonedMidnight("Asia/Kolkata", 2026, 12, 1)), "2026-11-30T18:30:00.000Z");
  // 23:30 UTC on 30 Nov is already 1 Dec in Tokyo.
  assert.equal(dateString("Asia/Tokyo", new Date("2026-11-30T23:30:00Z")), "2026-12-01");
  assert.equal(iso(startOfDay("Asia/Tokyo", new Date("2026-11-30T23:30:00Z"))), "2026-11-30T15:00:00.000Z");
});

test("days across a DST change are calendar days (23 and 25 hours)", () => {
  const spring = dayWindow("Europe/Berlin", "2027-03-28");
  assert.equal((spring.to - spring.from) / 3600000, 23);
  const autumn = dayWindow("Europe/Berlin", "2026-10-25");
  assert.equal((autumn.to - autumn.from) / 3600000, 25);
  assert.equal(iso(addDays("Europe/Berlin", spring.from, 1)), iso(spring.to));
  assert.equal(buckets("Europe/Berlin", spring.from, spring.to, "hour").length, 23);
  const week = buckets("Europe/Berlin", addDays("Europe/Berlin", spring.from, -3), addDays("Europe/Berlin", spring.from, 4), "day");
  assert.equal(week.length, 7);
  assert.ok(week.every((t) => dateString("Europe/Berlin", new Date(t + 1)) !== dateString("Europe/Berlin", new Date(t - 1))));
});

test("every bucket of the window gets a value: zero or a gap where nothing was recorded", () => {
  const day = dayWindow("UTC", "2026-12-01");
  const starts = buckets("UTC", day.from, day.to, "hour");
  assert.equal(starts.length, 24);
  const points = [{ t: Date.parse("2026-12-01T09:00:00Z"), v: 7 }, { t: Date.parse("2026-12-02T00:00:00Z"), v: 99 }];
  const units = fillBuckets(starts, day.to.getTime(), points, 0);
  assert.equal(units.length, 24);
  assert.equal(units[9], 7);
  assert.equal(units.reduce((a, b) => a + b, 0), 7); // the point after the window is not drawn
  const util = fillBuckets(starts, day.to.getTime(), points, null);
  assert.equal(util.filter((v) => v === null).length, 23);
});
