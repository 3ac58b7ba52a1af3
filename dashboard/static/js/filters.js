// The filter bar: one window (from, to) plus shift, site and station, applied to every view.
// Days are the site's days (its calendar's time zone), not the browser's.
import { el } from "./format.js";
import { addDays, dateString, dayWindow, longDate, clock, startOfDay } from "./time.js";

const DAY = 86400000;

function minutesIn(tz, at) {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .formatToParts(at);
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  return get("hour") * 60 + get("minute");
}

const hm = (s) => { const [h, m] = s.split(":").map(Number); return h * 60 + m; };

// The current occurrence of a shift: its start is found from the minutes
// elapsed since the shift's start time in the site's time zone.
export function currentShift(shifts, tz, now = new Date()) {
  const nowMin = minutesIn(tz, now);
  for (const s of shifts) {
    const start = hm(s.start);
    const length = ((hm(s.end) - start + 1440) % 1440) || 1440;
    const elapsed = (nowMin - start + 1440) % 1440;
    if (elapsed < length) {
      const from = new Date(now.getTime() - elapsed * 60000 - now.getSeconds() * 1000 - now.getMilliseconds());
      return { name: s.name, from, to: new Date(from.getTime() + length * 60000) };
    }
  }
  return null;
}

export class Filters {
  constructor(form, session, onChange) {
    this.form = form;
    this.session = session;
    this.onChange = onChange;
    this.range = form.querySelector("#f-range");
    this.from = form.querySelector("#f-from");
    this.to = form.querySelector("#f-to");
    this.shift = form.querySelector("#f-shift");
    this.site = form.querySelector("#f-site");
    this.station = form.querySelector("#f-station");
    this.label = form.querySelector("#window");
    const today = new Date();
    this.from.value = dateString(this.timezone(), new Date(today.getTime() - 6 * DAY));
    this.to.value = dateString(this.timezone(), today);
    for (const site of session.sites) this.site.append(el("option", { value: site, text: site }));
    this.fillShifts();
    form.addEventListener("change", (e) => {
      if (e.target === this.site) this.fillShifts();
      this.sync();
      this.onChange();
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    this.sync();
  }

  siteForCalendar() {
    return this.site.value || this.session.site_id;
  }

  // The time zone of the selected site's calendar (UTC without one), as the API's day buckets use.
  timezone() {
    return this.session.timezones[this.siteForCalendar()] || "UTC";
  }

  // The site's day containing `at`: [midnight, next midnight).
  today(at = new Date()) {
    const tz = this.timezone();
    const from = startOfDay(tz, at);
    return { from, to: addDays(tz, from, 1) };
  }

  shiftsOfSite() {
    return this.session.shifts[this.siteForCalendar()] || [];
  }

  fillShifts() {
    const keep = this.shift.value;
    this.shift.replaceChildren(el("option", { value: "", text: "All shifts" }));
    for (const s of this.shiftsOfSite()) {
      this.shift.append(el("option", { value: s.name, text: `${s.name} (${s.start}–${s.end})` }));
    }
    this.shift.value = this.shiftsOfSite().some((s) => s.name === keep) ? keep : "";
    this.range.querySelector('option[value="shift"]').disabled = this.shiftsOfSite().length === 0;
  }

  setStations(stations) {
    const keep = this.station.value;
    this.station.replaceChildren(el("option", { value: "", text: "All stations" }));
    for (const s of stations) this.station.append(el("option", { value: s.station_id, text: s.name || s.station_id }));
    this.station.value = stations.some((s) => s.station_id === keep) ? keep : "";
  }

  setRange(value) {
    this.range.value = value;
    this.sync();
  }

  sync() {
    const custom = this.range.value === "custom";
    for (const node of this.form.querySelectorAll(".custom")) node.hidden = !custom;
    const w = this.window();
    const tz = this.timezone();
    const at = (d) => `${longDate(tz, d)} ${clock(tz, d)}`;
    this.label.textContent = `${at(w.from)} – ${at(w.to)} (${tz})`;
  }

  // The half-open window [from, to) the metrics cover.
  window() {
    const now = new Date();
    const tz = this.timezone();
    switch (this.range.value) {
      case "shift": {
        const s = currentShift(this.shiftsOfSite(), tz, now);
        if (s) return { from: s.from, to: s.to, shift: s.name };
        return this.today(now);
      }
      case "7d": {
        const { from, to } = this.today(now);
        return { from: addDays(tz, from, -6), to };
      }
      case "custom": {
        const a = dayWindow(tz, this.from.value).from;
        const b = dayWindow(tz, this.to.value).to;
        return b > a ? { from: a, to: b } : dayWindow(tz, this.from.value);
      }
      default:
        return this.today(now);
    }
  }

  // Query parameters every metrics endpoint takes.
  params() {
    const w = this.window();
    return {
      from: w.from.toISOString(),
      to: w.to.toISOString(),
      site_id: this.site.value,
      shift: this.shift.value || w.shift || "",
    };
  }

  stationId() {
    return this.station.value;
  }
}
