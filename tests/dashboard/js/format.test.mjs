// node --test tests/dashboard/js/ (scripts/test.sh runs it)
import { test } from "node:test";
import assert from "node:assert/strict";
import { duration, hours } from "../../../dashboard/static/js/format.js";
import { errorText } from "../../../dashboard/static/js/api.js";

test("hours below an hour read as minutes, above as hours with one decimal", () => {
  assert.equal(hours(0), "0 min");
  assert.equal(hours(0.004), "< 1 min");
  assert.equal(hours(0.2), "12 min");
  assert.equal(hours(0.99), "59 min");
  assert.equal(hours(0.995), "1.0 h"); // 59.7 min rounds to an hour
  assert.equal(hours(1.5), "1.5 h");
  assert.equal(hours(null), "—");
});

test("durations in seconds", () => {
  assert.equal(duration(42), "42 s");
  assert.equal(duration(720), "12 min");
  assert.equal(duration(3599), "1.0 h");
  assert.equal(duration(5400), "1.5 h");
});

test("error text comes from the API's `error` field, never raw JSON", () => {
  const body = { error: "window longer than ten years", status: 422, timestamp: "t", path: "/x", request_id: "r" };
  assert.equal(errorText(body, "Unprocessable"), "window longer than ten years");
  const invalid = { error: "invalid request", details: [{ loc: ["query", "from"], msg: "Input should be a valid datetime", type: "x" }] };
  assert.equal(errorText(invalid, "x"), "invalid request (from: Input should be a valid datetime)");
  assert.equal(errorText({ unexpected: 1 }, "Bad Gateway"), "Bad Gateway");
  assert.equal(errorText(null, "Bad Gateway"), "Bad Gateway");
});
