// Calendar arithmetic in the site's time zone (IANA name, e.g. "Europe/Berlin").
// Pure (no DOM): the page, the charts and `node --test` (tests/dashboard/js/) use it.
// Every window the dashboard shows starts and ends at the site's midnights,
// whatever time zone the browser runs in.

const HOUR = 3600000;
const formatters = new Map();

function partsFormatter(tz) {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    formatters.set(tz, f);
  }
  return f;
}

// The wall-clock fields of an instant in `tz`: {y, m (1-12), d, h, mi, s}.
export function zonedParts(tz, at) {
  const out = {};
  for (const p of partsFormatter(tz).formatToParts(at)) {
    if (p.type !== "literal") out[p.type] = Number(p.value);
  }
  return { y: out.year, m: out.month, d: out.day, h: out.hour % 24, mi: out.minute, s: out.second };
}

// How far `tz` is ahead of UTC at an instant, in ms.
export function offsetMs(tz, at) {
  const p = zonedParts(tz, at);
  const wall = Date.UTC(p.y, p.m - 1, p.d, p.h, p.mi, p.s);
  return wall - (Math.floor(at.getTime() / 1000) * 1000);
}

// The instant at which the wall clock in `tz` shows y-m-d 00:00 (m is 1-12;
// out-of-range days roll over, as with Date.UTC). On a day that starts with a
// DST jump the first existing instant of that day is returned.
export function zonedMidnight(tz, y, m, d) {
  const wall = Date.UTC(y, m - 1, d);
  let t = wall - offsetMs(tz, new Date(wall));
  // A second pass settles offsets that change between the guess and the answer.
  t = wall - offsetMs(tz, new Date(t));
  const p = zonedParts(tz, new Date(t));
  if (Date.UTC(p.y, p.m - 1, p.d) !== wall) t += HOUR; // midnight fell in a DST gap
  return new Date(t);
}

// The site's midnight that starts the day containing `at`.
export function startOfDay(tz, at) {
  const p = zonedParts(tz, at);
  return zonedMidnight(tz, p.y, p.m, p.d);
}

// The site's midnight `n` calendar days after the day containing `at` (DST-safe).
export function addDays(tz, at, n) {
  const p = zonedParts(tz, at);
  return zonedMidnight(tz, p.y, p.m, p.d + n);
}

// "YYYY-MM-DD" of the site's day containing `at` (the value of an <input type="date">).
export function dateString(tz, at) {
  const p = zonedParts(tz, at);
  const pad = (n) => String(n).padStart(2, "0");
  return `${p.y}-${pad(p.m)}-${pad(p.d)}`;
}

// The site's day named by "YYYY-MM-DD": [its midnight, the next midnight).
export function dayWindow(tz, value) {
  const [y, m, d] = value.split("-").map(Number);
  return { from: zonedMidnight(tz, y, m, d), to: zonedMidnight(tz, y, m, d + 1) };
}

// Bucket starts covering [from, to): whole hours, or the site's days.
export function buckets(tz, from, to, unit) {
  const out = [];
  if (unit === "hour") {
    for (let t = from.getTime(); t < to.getTime(); t += HOUR) out.push(t);
    return out;
  }
  for (let t = startOfDay(tz, from); t < to; t = addDays(tz, t, 1)) out.push(t.getTime());
  return out;
}

// One value per bucket: each point (t in ms) lands in the bucket that contains it;
// buckets without a point get `missing` (0 for counts, null for a gap in a ratio).
export function fillBuckets(starts, end, points, missing) {
  const values = starts.map(() => missing);
  for (const { t, v } of points) {
    // The last bucket whose start is at or before t.
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found < 0 || t >= end) continue;
    values[found] = values[found] === null ? v : values[found] + v;
  }
  return values;
}

// "14:05" (24 h clock) in the site's time zone.
export function clock(tz, at, { seconds = false } = {}) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23",
  }).format(at);
}

// A date as people read it, in the site's time zone: "Tue, 1 Dec 2026".
export function longDate(tz, at) {
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, weekday: "short", day: "numeric", month: "short", year: "numeric",
  }).format(at);
}

// "1 Dec" in the site's time zone.
export function shortDate(tz, at) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: tz, day: "numeric", month: "short" }).format(at);
}
