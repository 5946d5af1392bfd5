// 告警 Alarms, history: every alarm the journal has, filtered by site, device, type, state
// (closed = cleared and acknowledged, `cleared_acked`) and the days it was raised, newest
// first, as GET /api/v1/alarms answers; at most LIMIT, with a note when more match. Fetched
// when the view is opened and on 查询 Search, not live. The number opens the lifecycle.

import { api } from "./api.js";
import { t, time, keys } from "./i18n.js";
import { $, el, fill } from "./dom.js";
import { opener } from "./alarm_detail.js";

/** The history shows at most this many alarms (the newest). */
const LIMIT = 200;
let shown = null;
let seq = 0;
let invalid = false;

export function init(onError) {
  $("history-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    refresh().catch(onError);
  });
}

/** The site and type choices (the sites as the overview has them). */
export function options(sites) {
  const all = () => {
    const o = el("option", { text: t("filter.all") });
    o.value = "";
    return o;
  };
  const site = $("h-site").value;
  fill($("h-site"), [
    all(),
    ...sites.map((s) => {
      const o = el("option", { text: `${s.id} · ${s.name}` });
      o.value = s.id;
      return o;
    }),
  ]);
  $("h-site").value = site;
  const type = $("h-type").value;
  fill($("h-type"), [
    all(),
    ...keys("alarm.type.").map((key) => {
      const o = el("option", { text: t(key) });
      o.value = key.slice("alarm.type.".length);
      return o;
    }),
  ]);
  $("h-type").value = type;
}

/** A date input's day as local midnight, or null. */
function day(input, plus = 0) {
  if (!input.value) return null;
  const [y, m, d] = input.value.split("-").map(Number);
  return new Date(y, m - 1, d + plus);
}

/** The query for the filters: from the first day's midnight to the end of the last day. */
function query() {
  const p = new URLSearchParams();
  const put = (k, v) => {
    if (v) p.set(k, v);
  };
  put("site", $("h-site").value);
  put("device", $("h-device").value.trim());
  put("state", $("h-state").value);
  put("type", $("h-type").value);
  const from = day($("h-from"));
  const to = day($("h-to"), 1);
  if (from && to && to <= from) return null;
  if (from) p.set("from", String(from.getTime()));
  if (to) p.set("to", String(to.getTime()));
  // One more than is shown: whether more match.
  p.set("limit", String(LIMIT + 1));
  return p.toString();
}

export async function refresh() {
  const q = query();
  invalid = q === null;
  if (invalid) {
    render();
    return;
  }
  const mine = ++seq;
  const list = await api(`/api/v1/alarms?${q}`);
  if (mine !== seq) return;
  shown = { query: q, alarms: list.alarms.slice(0, LIMIT), more: list.alarms.length > LIMIT };
  render();
}

function row(a) {
  return el(
    "tr",
    { data: { alarm: a.id, state: a.state } },
    el("td", { class: "num", data: { col: "id" } }, opener(a.id)),
    el("td", { text: a.site, data: { col: "site" } }),
    el("td", { text: a.device, data: { col: "device" } }),
    el("td", { text: t(`alarm.type.${a.type}`), data: { col: "type" } }),
    el("td", { text: t(`level.${a.scheme}.${a.level}`), data: { col: "level" } }),
    el("td", { text: t(`alarm.state.${a.state}`), data: { col: "state" } }),
    el("td", { text: time(a.raised_at), data: { col: "raised" } }),
    el("td", { text: time(a.cleared_at), data: { col: "cleared" } }),
    el("td", { text: a.acknowledged_by || "—", data: { col: "acked_by" } }),
    el("td", { text: time(a.acknowledged_at), data: { col: "acked_at" } }),
  );
}

export function render() {
  const table = $("alarm-history");
  const list = shown ? shown.alarms : [];
  fill(table.tBodies[0], list.map(row));
  // What was asked, for whoever checks the rows against the API.
  table.dataset.query = shown ? shown.query : "";
  $("history-none").hidden = !shown || list.length > 0 || invalid;
  $("history-more").hidden = !(shown && shown.more) && !invalid;
  $("history-more").textContent = invalid ? t("alarms.history.bad_dates") : t("alarms.history.more", { n: LIMIT });
}
