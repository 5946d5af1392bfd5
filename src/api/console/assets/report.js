// 指标 Indicators: the 自评表 for a window (today, this month, this quarter, this year, or
// custom dates; in the browser's time zone) and a scope (the region, a site, an enterprise),
// as GET /api/v1/report answers it: the rows of that scope (each row carries its [[targets]]
// scope), with every measured indicator of the scope for the same window from
// GET /api/v1/indicators. The reasons behind a shortfall are worded in the page's language
// from their structured fields (`note_code`, `note_params`), never the API's English `note`.
// The downloads (CSV, Markdown, JSON) are the API's report for exactly the window shown, all
// scopes. Evaluators and admins only (the API refuses others).

import { api, headers, ApiFailure } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill } from "./dom.js";
import { startOf } from "./windows.js";

const EXT = { csv: "csv", markdown: "md", json: "json" };
const SYMBOL = { ">=": "≥", "<=": "≤" };
const UNIT = { ratio: "%", milliseconds: " ms", count: "" };
let shown = null;
let scope = "region";
let sites = [];

/** A date input's day as local midnight. */
function day(input) {
  const [y, m, d] = input.value.split("-").map(Number);
  return input.value ? new Date(y, m - 1, d) : null;
}

/** The chosen window, [from, to) in RFC 3339; `null` when custom dates are missing. */
function chosen(now = new Date()) {
  const preset = $("report-window").querySelector("input[name=preset]:checked").value;
  if (preset !== "custom") return { from: startOf(preset, now).toISOString(), to: now.toISOString() };
  const from = day($("r-from"));
  const last = day($("r-to"));
  if (!from || !last) return null;
  const end = new Date(last.getFullYear(), last.getMonth(), last.getDate() + 1);
  return { from: from.toISOString(), to: (end < now ? end : now).toISOString() };
}

export function init(onError) {
  $("report-window").addEventListener("submit", (e) => {
    e.preventDefault();
    refresh().catch(onError);
  });
  for (const r of $("report-window").querySelectorAll("input[name=preset]")) {
    r.addEventListener("change", () => {
      if (r.value !== "custom") refresh().catch(onError);
    });
  }
  $("report-scope").addEventListener("change", () => {
    scope = $("report-scope").value;
    refresh().catch(onError);
  });
  for (const b of document.querySelectorAll(".downloads button")) {
    b.addEventListener("click", () => download(b.dataset.format).catch(onError));
  }
}

/** The scope selector: the region, each site, each site's enterprises. */
function options() {
  const opt = (value, text) => {
    const o = el("option", { text });
    o.value = value;
    return o;
  };
  const list = [opt("region", t("report.region"))];
  for (const s of sites) {
    list.push(opt(`site:${s.id}`, `${t("report.scope_site")} ${s.id} · ${s.name}`));
    for (const e of s.enterprises || []) {
      list.push(opt(`enterprise:${e.id}`, `${t("report.scope_enterprise")} ${e.id} · ${e.name}`));
    }
  }
  fill($("report-scope"), list);
  if (![...$("report-scope").options].some((o) => o.value === scope)) scope = "region";
  $("report-scope").value = scope;
}

export async function refresh() {
  const w = chosen();
  if (!w) return;
  const p = new URLSearchParams(w);
  const q = new URLSearchParams({ scope, ...w });
  const [report, inds, listing] = await Promise.all([
    api(`/api/v1/report?${p}`),
    api(`/api/v1/indicators?${q}`),
    api("/api/v1/sites"),
  ]);
  sites = listing.sites;
  shown = { ...w, scope, report, inds };
  render();
}

function pct(v) {
  return v === null || v === undefined ? "" : `${v}%`;
}

/** A duration in the page's language, its two largest units (as the report writes them). */
export function dur(ms) {
  const S = 1000;
  const MIN = 60 * S;
  const H = 60 * MIN;
  const D = 24 * H;
  const x = Math.max(0, Math.trunc(ms));
  if (x === 0) return t("report.dur.s", { n: 0 });
  if (x < S) return t("report.dur.ms", { n: x });
  if (x < MIN) return t("report.dur.s", { n: Math.floor(x / S) });
  const two = (big, bu, small, su) => {
    const a = Math.floor(x / big);
    const b = Math.floor((x % big) / small);
    const first = t(`report.dur.${bu}`, { n: a });
    return b === 0 ? first : `${first} ${t(`report.dur.${su}`, { n: b })}`;
  };
  if (x < H) return two(MIN, "min", S, "s");
  if (x < D) return two(H, "h", MIN, "min");
  return two(D, "d", H, "h");
}

/** The parts of a down device's reason: offline, faults, time before its first reading. */
function downText(p) {
  const parts = [];
  if (p.outages > 0) {
    const n = t("report.outages", { n: p.outages });
    parts.push(t("report.part.offline", { dur: dur(p.offline_ms), outages: n }));
  }
  if (p.faults && p.faults.length > 0) {
    const list = p.faults.map((f) => `${f.cause === null ? t("report.part.fault") : f.cause} ${dur(f.ms)}`);
    if (p.other_faults_ms > 0) list.push(t("report.part.other_faults", { dur: dur(p.other_faults_ms) }));
    parts.push(t("report.part.faults", { list: list.join(t("report.sep")) }));
  }
  if (p.never_ms > 0) {
    parts.push(
      t("report.part.never", { dur: dur(p.never_ms), registered: time(p.registered), first: time(p.first_reading) }),
    );
  }
  return t("report.note.device_down", { parts: parts.join(t("report.parts_sep")) });
}

/** A reason's text in the page's language, from its code and parameters. */
export function noteText(code, p) {
  if (code === "device_down") return downText(p);
  const v = {};
  for (const [k, x] of Object.entries(p || {})) {
    if (k.endsWith("_ms") && typeof x === "number") v[k] = dur(x);
    else if (["registered", "raised", "deadline_at", "first_reading"].includes(k)) v[k] = time(x);
    else v[k] = x;
  }
  if (p && p.status) v.status = t(`report.status.${p.status}`);
  if (p && p.alarm_type) v.alarm_type = t(`alarm.type.${p.alarm_type}`);
  return t(`report.note.${code}`, v);
}

function reasonLine(x) {
  const share = `${(Number(x.share) * 100).toFixed(2)}%`;
  const vars = { share, unit: t(`report.unit.${x.unit}`), id: x.id, site: x.site, text: noteText(x.note_code, x.note_params) };
  let s = t(x.site ? "report.reason_line" : "report.reason_line_nosite", vars);
  if (x.longest_from && x.longest_to) s += t("report.longest", { from: time(x.longest_from), to: time(x.longest_to) });
  return s;
}

function reasons(r) {
  const n = r.reasons.length + (r.folded ? r.folded.count : 0);
  if (n === 0) return null;
  const items = r.reasons.map((x) => el("li", { text: reasonLine(x), data: { code: x.note_code } }));
  if (r.folded) items.push(el("li", { text: t("report.folded", { n: r.folded.count }) }));
  return el("details", {}, el("summary", { text: t("report.reasons", { n }) }), el("ol", {}, ...items));
}

/** Σ of decimal strings, exactly (as many decimals as the longest). */
function decimalSum(values) {
  const places = Math.max(0, ...values.map((v) => (String(v).split(".")[1] || "").length));
  const scaled = values.map((v) => {
    const [i, f = ""] = String(v).replace("-", "").split(".");
    const n = BigInt(i + f.padEnd(places, "0"));
    return String(v).startsWith("-") ? -n : n;
  });
  const total = scaled.reduce((a, b) => a + b, 0n);
  const neg = total < 0n;
  const digits = (neg ? -total : total).toString().padStart(places + 1, "0");
  const whole = digits.slice(0, digits.length - places);
  const frac = places ? `.${digits.slice(digits.length - places)}` : "";
  return `${neg ? "-" : ""}${whole}${frac}`.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

/** A number of units as the indicator table shows it: whole; to 2 decimals from 1; below,
 * 3 significant digits (a few seconds of a device in a long window are not 0.00). */
export function units(v) {
  if (v === null || v === undefined) return "—";
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

function targetText(i) {
  if (!i.target) return "";
  const value = String(i.target.value).includes(".") ? String(i.target.value).replace(/\.?0+$/, "") : String(i.target.value);
  return `${SYMBOL[i.target.comparator] || i.target.comparator}${value}${UNIT[i.unit] || ""}`;
}

function indicatorName(i) {
  const name = t(`report.ind.${i.id}`);
  if (!i.qualifier) return name;
  const q = i.id === "system_count" ? t(`syskind.${i.qualifier}`) : i.qualifier;
  return `${name} · ${q}`;
}

function indicatorRows(list) {
  return list.map((i) =>
    el(
      "tr",
      { data: { id: i.id, qualifier: i.qualifier || "" } },
      el("td", { text: indicatorName(i), data: { col: "name" } }),
      el("td", { class: "num", text: i.display === null ? "—" : i.display, data: { col: "value" } }),
      el("td", { class: "num", text: `${units(i.numerator)} / ${units(i.denominator)}`, data: { col: "ratio" } }),
      el("td", { text: targetText(i), data: { col: "target" } }),
      el("td", { class: "num", text: pct(i.completion_pct), data: { col: "completion" } }),
      el("td", { class: "num", text: pct(i.deviation_pct), data: { col: "deviation" } }),
    ),
  );
}

export function render() {
  options();
  if (!shown) return;
  const { report } = shown;
  const range = $("report-range");
  range.textContent = t("report.range", { from: time(shown.from), to: time(shown.to) });
  range.dataset.from = shown.from;
  range.dataset.to = shown.to;
  range.dataset.scope = shown.scope;
  const mine = report.rows.map((r, i) => [r, i]).filter(([r]) => r.scope === shown.scope);
  const rows = mine.map(([r, i]) =>
    el(
      "tr",
      { data: { row: i } },
      el("td", { text: r.level1 }),
      el("td", { text: r.level2 }),
      el("td", { text: r.label, data: { col: "label" } }),
      el("td", { text: r.target, data: { col: "target" } }),
      el("td", { class: "num", text: r.actual, data: { col: "actual" } }),
      el("td", { class: "num", text: pct(r.completion_pct), data: { col: "completion" } }),
      el("td", { class: "num", text: pct(r.deviation_pct), data: { col: "deviation" } }),
      el("td", { class: "num", text: r.weight, data: { col: "weight" } }),
      el("td", { class: "num", text: r.score === null ? "" : r.score, data: { col: "score" } }),
      el("td", { text: t(`source.${r.source}`) }),
      el("td", { text: r.scope }),
      el("td", { data: { col: "reasons" } }, reasons(r)),
    ),
  );
  fill($("report").tBodies[0], rows);
  const all = mine.length === report.rows.length;
  $("report-weight").textContent = all ? report.total_weight : decimalSum(mine.map(([r]) => r.weight));
  const scores = mine.map(([r]) => r.score).filter((s) => s !== null);
  $("report-score").textContent = all ? report.total_score : decimalSum(scores.length ? scores : ["0"]);
  $("report-none").hidden = mine.length > 0;
  $("report-ind-title").textContent = t("report.ind_title", { scope: scopeName(shown.scope) });
  fill($("report-indicators").tBodies[0], indicatorRows(shown.inds.indicators));
}

function scopeName(s) {
  const o = [...$("report-scope").options].find((x) => x.value === s);
  return o ? o.textContent : s;
}

/** Download the report shown, in `format`, for the same window (same numbers). */
async function download(format) {
  if (!shown) return;
  const p = new URLSearchParams({ from: shown.from, to: shown.to, format });
  const res = await fetch(`/api/v1/report?${p}`, { headers: headers({ Accept: "*/*" }), cache: "no-store" });
  if (!res.ok) throw new ApiFailure(res.status, res.statusText);
  const url = URL.createObjectURL(await res.blob());
  const a = el("a");
  a.href = url;
  a.download = `self-evaluation.${EXT[format]}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
