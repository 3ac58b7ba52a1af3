// A sortable, searchable table. Columns: {key, label, kind: text|hours|pct|int|rate|util, why?(row)}:
// `why` gives the tooltip of a missing value.
import { el, fmt, utilBar } from "./format.js";

export class DataTable {
  constructor(table, { columns, idKey, onOpen, searchInput, emptyText, sort }) {
    this.table = table;
    this.columns = columns;
    this.idKey = idKey;
    this.onOpen = onOpen;
    this.emptyText = emptyText;
    this.sort = sort;
    this.rows = [];
    this.filter = "";
    this.keep = null;
    if (searchInput) {
      searchInput.addEventListener("input", () => { this.filter = searchInput.value.trim().toLowerCase(); this.render(); });
    }
  }

  // Only rows whose id is in `ids` (a Set) are shown; null shows all.
  setKeep(ids) { this.keep = ids; }

  setRows(rows) { this.rows = rows; this.render(); }

  sorted() {
    const { key, dir } = this.sort;
    const sign = dir === "ascending" ? 1 : -1;
    return [...this.rows].sort((a, b) => {
      const x = a[key], y = b[key];
      if (typeof x === "number" && typeof y === "number") return (x - y) * sign;
      return String(x ?? "").localeCompare(String(y ?? "")) * sign;
    });
  }

  header() {
    return el("thead", {}, el("tr", {}, this.columns.map((c) => {
      const sorted = this.sort.key === c.key ? this.sort.dir : "none";
      return el("th", { scope: "col", "aria-sort": sorted, class: c.kind === "text" ? "text" : null },
        el("button", {
          type: "button",
          text: c.label,
          onclick: () => {
            const same = this.sort.key === c.key;
            const flip = this.sort.dir === "ascending" ? "descending" : "ascending";
            this.sort = { key: c.key, dir: same ? flip : c.kind === "text" ? "ascending" : "descending" };
            this.render();
          },
        }));
    })));
  }

  cell(row, c, first) {
    const value = row[c.key];
    const attrs = { "data-col": c.key, "data-value": value ?? "", class: c.kind === "text" ? "text" : null };
    if (first) {
      return el("th", { ...attrs, scope: "row" },
        el("button", { type: "button", class: "link", text: fmt.text(value), onclick: () => this.onOpen(row),
          "aria-label": `Details of ${value}` }));
    }
    if (c.kind === "util") return el("td", attrs, utilBar(value));
    const f = fmt[c.kind] || fmt.text;
    if (value === null || value === undefined) {
      // A column may say why a value is missing (e.g. "no target set"): the cell's tooltip.
      return el("td", { ...attrs, title: c.why ? c.why(row) : null, class: c.why ? "missing" : null }, "—");
    }
    return el("td", attrs, f(value));
  }

  render() {
    const visible = this.sorted().filter((row) => {
      if (this.keep && !this.keep.has(row[this.idKey])) return false;
      if (!this.filter) return true;
      return this.columns.some((c) => c.kind === "text" && String(row[c.key] ?? "").toLowerCase().includes(this.filter));
    });
    const body = el("tbody", {}, visible.map((row) =>
      el("tr", { "data-id": row[this.idKey] }, this.columns.map((c, i) => this.cell(row, c, i === 0)))));
    if (visible.length === 0) {
      body.append(el("tr", {}, el("td", { class: "empty", colspan: this.columns.length, text: this.emptyText })));
    }
    this.table.replaceChildren(this.header(), body);
  }
}
