import { test } from "node:test";
import assert from "node:assert/strict";
import { privacyNote } from "../../../dashboard/static/js/privacy.js";

test("the note names the token's sites, the site's level and what the role sees of people", () => {
  assert.equal(privacyNote({ site_scoped: false, sites: ["a"], per_person: true }), "All sites · per-person figures shown");
  const privacy = { "plant-a": { level: "pseudonymous", min_group: 5 } };
  assert.equal(
    privacyNote({ site_scoped: true, sites: ["plant-a", "plant-b"], site_id: "plant-a", privacy, per_person: false }),
    "Sites: plant-a, plant-b · privacy level pseudonymous · stations and teams only, groups under 5 withheld",
  );
  assert.equal(
    privacyNote({ site_scoped: false, sites: ["plant-a"], site_id: "plant-a", privacy, per_person: true }),
    "All sites · privacy level pseudonymous · per-person figures shown",
  );
});
