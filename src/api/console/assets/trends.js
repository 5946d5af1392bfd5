// 趋势 Trends: 联网在线率 and 覆盖率 of the region or one site (and the network latency p95,
// in ms, as its own small chart), hour by hour over the last
// 24 hours or day by day over the last 30 days (in the browser's time zone; the last point
// is the period in progress, up to now). Each point is one GET /api/v1/indicators call for
// that period, at most CONCURRENCY at a time: the gateway's own evaluation, so a point is the
// 自评表's figure for that window. Drawn as SVG built with DOM calls (no library, no markup
// from strings), with the same figures in a table below. Evaluators and admins only.

import { api } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill, percent } from "./dom.js";
import { line, root as svgRoot, svg, text } from "./svg.js";

const W = 960;
const H = 240;
const PAD = { l: 52, r: 12, t: 12, b: 24 };
const CONCURRENCY = 4;
const SERIES = [
  ["online_rate", "trend-online"],
  ["coverage_rate", "trend-coverage"],
];
const choice = { scope: "region", step: "hour" };
let data = null;

export function init(onError) {
  $("trend-form").addEventListener("submit", (e) => e.preventDefault());
  $("trend-scope").addEventListener("change", () => {
    choice.scope = $("trend-scope").value;
    refresh().catch(onError);
  });
  for (const r of $("trend-form").querySelectorAll("input[name=step]")) {
    r.addEventListener("change", () => {
      choice.step = r.value;
      refresh().catch(onError);
    });
  }
}

/** The scope selector: the region, then each site. */
export function options(sites) {
  const region = el("option", { text: t("trend.region") });
  region.value = "region";
  const list = sites.map((s) => {
    const o = el("option", { text: `${s.id} · ${s.name}` });
    o.value = `site:${s.id}`;
    return o;
  });
  fill($("trend-scope"), [region, ...list]);
  $("trend-scope").value = choice.scope;
}

/** The periods, oldest first: 24 hours or 30 days, the last one ending now. */
function periods(step, now = new Date()) {
  const out = [];
  const n = step === "hour" ? 24 : 30;
  const start =
    step === "hour"
      ? new Date(now.getFullYear(), now.getMonth(), now.getDate(), now.getHours())
      : new Date(now.getFullYear(), now.getMonth(), now.getDate());
  for (let i = n - 1; i >= 0; i--) {
    const from = new Date(start);
    const to = new Date(start);
    if (step === "hour") {
      from.setHours(from.getHours() - i);
      to.setHours(to.getHours() - i + 1);
    } else {
      from.setDate(from.getDate() - i);
      to.setDate(to.getDate() - i + 1);
    }
    out.push({ from: from.toISOString(), to: (i === 0 ? now : to).toISOString(), partial: i === 0 });
  }
  return out;
}

async function pool(items, n, f) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export async function refresh() {
  const scope = choice.scope;
  const step = choice.step;
  const points = await pool(periods(step), CONCURRENCY, async (p) => {
    const q = new URLSearchParams({ scope, from: p.from, to: p.to });
    const r = await api(`/api/v1/indicators?${q}`);
    const pick = (id) => {
      const i = r.indicators.find((x) => x.id === id && !x.qualifier);
      return i && i.value !== undefined ? i.value : null;
    };
    return {
      ...p,
      online_rate: pick("online_rate"),
      coverage_rate: pick("coverage_rate"),
      latency_p95_ms: pick("latency_p95_ms"),
    };
  });
  data = { scope, step, points };
  render();
}

/** The chart: a grid at 0, 50, 80, 95 and 100 %, one line (and a dot per period) per
 * series, gaps where a period has no value. */
function chart(points) {
  const root = svgRoot(W, H, "trend-chart");
  const x = (i) => PAD.l + (points.length < 2 ? 0 : (i * (W - PAD.l - PAD.r)) / (points.length - 1));
  const y = (v) => PAD.t + (1 - v) * (H - PAD.t - PAD.b);
  for (const g of [0, 0.5, 0.8, 0.95, 1]) {
    root.append(line(PAD.l, y(g), W - PAD.r, y(g), "trend-grid"));
    if (g !== 0.95) root.append(text(4, y(g) + 4, `${g * 100}%`, "trend-axis"));
  }
  const every = Math.ceil(points.length / 8);
  points.forEach((p, i) => {
    if (i % every === 0 || i === points.length - 1) root.append(text(x(i) - 16, H - 6, tick(p), "trend-axis"));
  });
  for (const [id, cls] of SERIES) series(root, points, id, cls, x, y);
  return root;
}

/** One series `id` of `points` drawn on `root`: a line broken where a period has no value,
 * and a dot per period, so a period between two gaps shows. */
function series(root, points, id, cls, x, y) {
  let poly = null;
  points.forEach((p, i) => {
    const v = p[id];
    if (v === null) {
      poly = null;
      return;
    }
    if (!poly) {
      poly = svg("polyline", cls);
      poly.dataset.series = id;
      root.append(poly);
    }
    const pt = root.createSVGPoint();
    pt.x = x(i);
    pt.y = y(v);
    poly.points.appendItem(pt);
    const dot = svg("circle", cls);
    dot.cx.baseVal.value = pt.x;
    dot.cy.baseVal.value = pt.y;
    dot.r.baseVal.value = 3;
    root.append(dot);
  });
}

/** A round top for the latency chart's scale: 1, 2 or 5 × 10ⁿ ms, at least 10 ms. */
function top(max) {
  let step = 10;
  for (;;) {
    for (const m of [1, 2, 5]) if (step * m >= max) return step * m;
    step *= 10;
  }
}

/** The latency p95 chart: its own scale, 0 to a round top; a line with a dot per period,
 * gaps where a period has no reading with a timestamp. */
function latencyChart(points) {
  const h = 140;
  const root = svgRoot(W, h, "trend-chart");
  const values = points.map((p) => p.latency_p95_ms).filter((v) => v !== null);
  const max = top(Math.max(0, ...values));
  const x = (i) => PAD.l + (points.length < 2 ? 0 : (i * (W - PAD.l - PAD.r)) / (points.length - 1));
  const y = (v) => PAD.t + (1 - v / max) * (h - PAD.t - PAD.b);
  for (const g of [0, max / 2, max]) {
    root.append(line(PAD.l, y(g), W - PAD.r, y(g), "trend-grid"));
    root.append(text(4, y(g) + 4, `${g} ms`, "trend-axis"));
  }
  series(root, points, "latency_p95_ms", "trend-latency", x, y);
  return root;
}

/** A latency in ms, or — when the period has none. */
function ms(v) {
  return v === null ? "—" : `${v} ms`;
}

function tick(p) {
  const d = new Date(p.from);
  return data.step === "hour" ? `${String(d.getHours()).padStart(2, "0")}:00` : `${d.getMonth() + 1}/${d.getDate()}`;
}

export function render() {
  if (!data) return;
  fill($("trend-chart"), [chart(data.points)]);
  fill($("trend-latency"), [latencyChart(data.points)]);
  const rows = data.points
    .slice()
    .reverse()
    .map((p) =>
      el(
        "tr",
        { data: { from: p.from, to: p.to, scope: data.scope } },
        el("td", { text: time(p.from) + (p.partial ? ` ${t("trend.so_far")}` : ""), data: { col: "period" } }),
        el("td", { class: "num", text: percent({ value: p.online_rate }), data: { col: "online_rate" } }),
        el("td", { class: "num", text: percent({ value: p.coverage_rate }), data: { col: "coverage_rate" } }),
        el("td", { class: "num", text: ms(p.latency_p95_ms), data: { col: "latency_p95_ms" } }),
      ),
    );
  fill($("trends").tBodies[0], rows);
}
