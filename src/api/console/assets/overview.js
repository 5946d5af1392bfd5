// 总览 Overview: the region and each site, from GET /api/v1/sites (counts only, never the
// device list). Refetched when the live feed reports a device change.

import { api } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill, percent, rateClass } from "./dom.js";

let data = null;
let fetchedAt = null;
const listeners = [];

export function sites() {
  return data ? data.sites : [];
}

/** The region's figures, as last fetched. */
export function region() {
  return data ? data.region : null;
}

/** Call `fn` after each refetch (the wall draws from the same answer). */
export function onUpdate(fn) {
  listeners.push(fn);
}

export async function refresh() {
  data = await api("/api/v1/sites");
  fetchedAt = new Date().toISOString();
  render();
  for (const fn of listeners) fn();
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

export function render() {
  if (!data) return;
  const r = data.region;
  setRate($("region-rate"), r.online_rate);
  $("region-counted").textContent = r.devices.counted;
  $("region-online").textContent = r.devices.online;
  $("region-offline").textContent = r.devices.offline;
  $("region-never").textContent = r.devices.never;
  $("region-faulty").textContent = r.devices.faulty;
  $("region-alarms-active").textContent = r.alarms.active;
  $("region-alarms-unacked").textContent = r.alarms.unacknowledged;
  $("overview-updated").textContent = t("overview.updated", { t: time(fetchedAt) });
  const rows = data.sites.map((s) => {
    const rate = el("td", { class: "num", text: percent(s.online_rate), data: { col: "online_rate" } });
    const c = rateClass(s.online_rate);
    if (c) rate.classList.add(c);
    return el(
      "tr",
      { data: { site: s.id } },
      el("td", { text: s.id }),
      el("td", { text: s.name, data: { col: "name" } }),
      rate,
      num("counted", s.devices.counted),
      num("online", s.devices.online),
      num("offline", s.devices.offline),
      num("never", s.devices.never),
      num("faulty", s.devices.faulty),
      num("alarms_active", s.alarms.active),
      num("alarms_unacked", s.alarms.unacknowledged),
    );
  });
  fill($("sites").tBodies[0], rows);
}
