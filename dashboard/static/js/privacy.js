// What the signed-in token may see (docs/privacy.md): its sites, and whether it has the
// per-person right. Without it the page shows stations and teams only: the workers panel
// is removed and worker ids read "(hidden)" in what the API returns.
import { el } from "./format.js";

// The sentence shown next to the role badge: the token's sites, the privacy level of the
// page's site (TAKT_PRIVACY) and what the role sees of people.
export function privacyNote(session) {
  const sites = session.site_scoped ? `Sites: ${session.sites.join(", ")}` : "All sites";
  const policy = (session.privacy || {})[session.site_id];
  const level = policy ? ` · privacy level ${policy.level}` : "";
  const people = session.per_person
    ? "per-person figures shown"
    : `stations and teams only${policy && policy.min_group > 1 ? `, groups under ${policy.min_group} withheld` : ""}`;
  return `${sites}${level} · ${people}`;
}

export function applyPrivacy(root, session) {
  const note = el("span", { id: "privacy", class: "sub", "aria-label": "What this token may see", text: privacyNote(session) });
  root.querySelector("#privacy")?.remove();
  root.querySelector("#role")?.after(note);
  if (!session.per_person) {
    root.querySelector("section[aria-labelledby='workers-title']")?.remove();
  }
}
