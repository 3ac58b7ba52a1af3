import { test } from "node:test";
import assert from "node:assert/strict";
import { privacyNote } from "../../../dashboard/static/js/privacy.js";

test("the note names the token's sites and whether per-person figures are shown", () => {
  assert.equal(privacyNote({ site_scoped: false, sites: ["a"], per_person: true }), "All sites · per-person figures shown");
  assert.equal(
    privacyNote({ site_scoped: true, sites: ["plant-a", "plant-b"], per_person: false }),
    "Sites: plant-a, plant-b · stations and teams only",
  );
});
