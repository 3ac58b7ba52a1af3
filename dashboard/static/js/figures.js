// Target figures (docs/metrics.md, "Targets, availability, performance, OEE"): why one is
// null, in the words its tooltip uses. No DOM: `node --test` imports this module.

// row: a station's metrics, or the factory's `targets` (null when no station has a target in force).
export function whyMissing(key, row) {
  if (!row) return "no target set for any station in this window";
  const targeted = row.target_units !== null && row.target_units !== undefined;
  switch (key) {
    case "target_units":
      return "no target set";
    case "availability_percentage":
      return "no planned production time in this window so far (outside the shifts, or still to come)";
    case "performance_percentage":
      return targeted ? "no working time while a target was in force" : "no target set";
    default:
      return "not known";
  }
}

// The target figures the cards and the workstation table show beside the units made.
export const TARGET_FIGURES = [
  { key: "target_units", label: "Target units", kind: "rate" },
  { key: "availability_percentage", label: "Availability", kind: "pct", unit: "%" },
  { key: "performance_percentage", label: "Performance", kind: "pct", unit: "%" },
];
