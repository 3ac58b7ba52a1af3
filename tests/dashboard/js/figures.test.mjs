// node --test tests/dashboard/js/ (scripts/test.sh runs it)
import { test } from "node:test";
import assert from "node:assert/strict";
import { whyMissing } from "../../../dashboard/static/js/figures.js";

test("a missing target figure says why", () => {
  const untargeted = { target_units: null, availability_percentage: 40, performance_percentage: null };
  assert.equal(whyMissing("target_units", untargeted), "no target set");
  assert.equal(whyMissing("performance_percentage", untargeted), "no target set");
  const idle = { target_units: 12.5, availability_percentage: 0, performance_percentage: null };
  assert.equal(whyMissing("performance_percentage", idle), "no working time while a target was in force");
  const offShift = { target_units: null, availability_percentage: null, performance_percentage: null };
  assert.equal(whyMissing("availability_percentage", offShift), "no planned production time in this window so far (outside the shifts, or still to come)");
  assert.equal(whyMissing("target_units", null), "no target set for any station in this window");
});
