// 总览 Overview: the region and each site, from GET /api/v1/overview — now (counts,
// 联网在线率, alarms) and over the chosen window (联网在线率 time-weighted, 覆盖率, 预警响应率,
// against their [[targets]]), Modbus endpoints down and late mine uploads. Never the device
// list. Refetched when the live feed reports a change (the window's figures are kept by the
// gateway for 30 s, so that is cheap).

import { api } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill, percent, rateClass } from "./dom.js";
import { startOf } from "./windows.js";

let data = null;
let fetchedAt = null;
let preset = "today";
const listeners = [];

/** The sites as the other views use them: id, name and the figures now. */
export function sites() {
  return data ? data.sites.map(nowShape) : [];
}

/** The region's figures now, as last fetched. */
export function region() {
  return data ? nowShape(data.region) : null;
}

function nowShape(s) {
  return {
    id: s.id,
    name: s.name,
    devices: { counted: s.counted, online: s.online, offline: s.offline, never: s.never, faulty: s.faulty },
    online_rate: { value: s.online_rate },
    alarms: { active: s.alarms_active, unacknowledged: s.alarms_unacked },
  };
}

/** Call `fn` after each refetch (the wall draws from the same answer). */
export function onUpdate(fn) {
  listeners.push(fn);
}

export function init(onError) {
  for (const r of $("overview-window").querySelectorAll("input[name=ov-preset]")) {
    r.addEventListener("change", () => {
      preset = r.value;
      refresh().catch(onError);
    });
  }
}

export async function refresh() {
  const from = startOf(preset, new Date()).toISOString();
  data = await api(`/api/v1/overview?${new URLSearchParams({ from })}`);
  $("overview-window").dataset.from = from;
  fetchedAt = new Date().toISOString();
  render();
  for (const fn of listeners) fn();
}

/** An exact [numerator, denominator] as a per-cent figure (2 decimals), or —. */
export function exactPercent(pair) {
  if (!pair || !pair[1]) return "—";
  return `${((pair[0] / pair[1]) * 100).toFixed(2)}%`;
}

/** The target row of `indicator` in `scope`, if any. */
function target(scope, indicator) {
  return data.targets.find((x) => x.scope === scope && x.indicator === indicator);
}

/** Colour by completion where a target is set (met, within 5 points, below), else by the
 * rate itself. */
function colour(node, pair, tgt) {
  node.classList.remove("rate-good", "rate-warn", "rate-bad");
  let c = "";
  if (tgt && tgt.completion_pct !== null) {
    const done = Number(tgt.completion_pct);
    c = done >= 100 ? "rate-good" : done >= 95 ? "rate-warn" : "rate-bad";
  } else if (pair && pair[1]) {
    c = rateClass({ value: pair[0] / pair[1] });
  }
  if (c) node.classList.add(c);
}

function windowCell(col, scope, w, indicator) {
  const pair = w[indicator];
  const tgt = target(scope, indicator);
  const td = el("td", { class: "num", text: exactPercent(pair), data: { col } });
  if (tgt) td.append(el("span", { class: "hint", text: ` / ${tgt.comparator} ${tgt.target}%` }));
  colour(td, pair, tgt);
  return td;
}

function setFigure(id, scope, w, indicator) {
  const node = $(id);
  const pair = w[indicator];
  node.textContent = exactPercent(pair);
  colour(node, pair, target(scope, indicator));
  const tgt = target(scope, indicator);
  const note = $(`${id}-target`);
  note.textContent = tgt
    ? t("overview.target", { cmp: tgt.comparator, target: `${tgt.target}%`, completion: tgt.completion_pct === null ? "—" : `${tgt.completion_pct}%` })
    : t("overview.no_target");
}

function setRate(node, rate) {
  node.textContent = percent(rate);
  node.classList.remove("rate-good", "rate-warn", "rate-bad");
  const c = rateClass(rate);
  if (c) node.classList.add(c);
}

function num(col, v) {
  return el("td", { class: "num", text: v, data: { col } });
}

function renderRegion() {
  const r = data.region;
  setRate($("region-rate"), { value: r.online_rate });
  for (const k of ["counted", "online", "offline", "never", "faulty"]) $(`region-${k}`).textContent = r[k];
  $("region-alarms-active").textContent = r.alarms_active;
  $("region-alarms-unacked").textContent = r.alarms_unacked;
  setFigure("region-window-rate", "region", r.window, "online_rate");
  setFigure("region-coverage", "region", r.window, "coverage_rate");
  setFigure("region-response", "region", r.window, "alarm_response_rate");
  $("region-endpoints-down").textContent = t("overview.of", { n: r.endpoints_down, total: r.endpoints });
  $("region-endpoints-down").classList.toggle("rate-bad", r.endpoints_down > 0);
  $("region-mines-late").textContent = t("overview.of", { n: r.mines_late, total: r.mines });
  $("region-mines-late").classList.toggle("rate-bad", r.mines_late > 0);
  $("overview-updated").textContent = t("overview.updated", { t: time(fetchedAt) });
  $("overview-range").textContent = t("overview.range", {
    from: time(data.window.from),
    to: time(data.window.to),
    at: time(data.window.computed_at),
  });
}

function siteRow(s) {
  const scope = `site:${s.id}`;
  const rate = el("td", { class: "num", text: percent({ value: s.online_rate }), data: { col: "online_rate" } });
  const c = rateClass({ value: s.online_rate });
  if (c) rate.classList.add(c);
  const mine = s.mine === null ? "—" : s.mine.late ? t("overview.late") : t("overview.on_time");
  const mineCell = el("td", { text: mine, data: { col: "mine" } });
  if (s.mine && s.mine.late) mineCell.classList.add("rate-bad");
  return el(
    "tr",
    { data: { site: s.id } },
    el("td", { text: s.id }),
    el("td", { text: s.name, data: { col: "name" } }),
    rate,
    windowCell("window_rate", scope, s.window, "online_rate"),
    windowCell("coverage", scope, s.window, "coverage_rate"),
    windowCell("response", scope, s.window, "alarm_response_rate"),
    num("counted", s.counted),
    num("online", s.online),
    num("offline", s.offline),
    num("never", s.never),
    num("faulty", s.faulty),
    num("alarms_active", s.alarms_active),
    num("alarms_unacked", s.alarms_unacked),
    num("endpoints_down", s.endpoints_down),
    mineCell,
  );
}

export function render() {
  if (!data) return;
  renderRegion();
  fill($("sites").tBodies[0], data.sites.map(siteRow));
  // When the figures were first drawn, for the load benchmark (console-load).
  if (performance.getEntriesByName("overview-drawn").length === 0) performance.mark("overview-drawn");
}
