// 指标 Indicators: the 自评表 for a window (today, this month, this quarter, this year, or
// custom dates; in the browser's time zone), as GET /api/v1/report answers it, and its
// downloads (CSV, Markdown, JSON) for exactly the window shown. Evaluators and admins only
// (the API refuses others).

import { api, headers, ApiFailure } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill } from "./dom.js";

const EXT = { csv: "csv", markdown: "md", json: "json" };
let shown = null;

function startOf(preset, now) {
  const y = now.getFullYear();
  const m = now.getMonth();
  if (preset === "today") return new Date(y, m, now.getDate());
  if (preset === "month") return new Date(y, m, 1);
  if (preset === "quarter") return new Date(y, m - (m % 3), 1);
  return new Date(y, 0, 1);
}

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
  for (const b of document.querySelectorAll(".downloads button")) {
    b.addEventListener("click", () => download(b.dataset.format).catch(onError));
  }
}

export async function refresh() {
  const w = chosen();
  if (!w) return;
  const p = new URLSearchParams(w);
  const report = await api(`/api/v1/report?${p}`);
  shown = { ...w, report };
  render();
}

function pct(v) {
  return v === null || v === undefined ? "" : `${v}%`;
}

function reasons(r) {
  const n = r.reasons.length + (r.folded ? r.folded.count : 0);
  if (n === 0) return null;
  const items = r.reasons.map((x) => {
    const share = `${(Number(x.share) * 100).toFixed(2)}%`;
    return el("li", { text: `${share} · ${x.unit} ${x.id} (${x.site}) ${x.note}`.trim() });
  });
  if (r.folded) items.push(el("li", { text: t("report.folded", { n: r.folded.count }) }));
  return el("details", {}, el("summary", { text: t("report.reasons", { n }) }), el("ol", {}, ...items));
}

export function render() {
  if (!shown) return;
  const { report } = shown;
  const range = $("report-range");
  range.textContent = t("report.range", { from: time(shown.from), to: time(shown.to) });
  range.dataset.from = shown.from;
  range.dataset.to = shown.to;
  const rows = report.rows.map((r, i) =>
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
  $("report-weight").textContent = report.total_weight;
  $("report-score").textContent = report.total_score;
  $("report-none").hidden = report.rows.length > 0;
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
