// 大屏 Wall (`/?view=wall`): a kiosk layout for a control-room screen. Large figures of the
// region, and one site at a time, rotating every ROTATE_MS (`&rotate=` seconds, at least 3);
// dark theme; nothing to click. The figures are the overview's (GET /api/v1/sites), which the
// live feed refetches on every device or alarm change, so the wall follows without polling.

import { t, time } from "./i18n.js";
import { $, percent, rateClass } from "./dom.js";

const ROTATE_MS = 10000;
let sites = () => [];
let region = () => null;
let index = 0;
let timer = null;

/** Whether the page was opened as the wall. */
export function requested() {
  return new URLSearchParams(location.search).get("view") === "wall";
}

function rotateMs() {
  const s = Number(new URLSearchParams(location.search).get("rotate"));
  return Number.isFinite(s) && s >= 3 ? s * 1000 : ROTATE_MS;
}

/** Start the wall on the overview's data (`getSites`, `getRegion` read it as it is now). */
export function start(getSites, getRegion) {
  sites = getSites;
  region = getRegion;
  document.body.classList.add("wall");
  $("view-wall").hidden = false;
  clearInterval(timer);
  timer = setInterval(() => {
    index += 1;
    render();
  }, rotateMs());
  setInterval(clock, 1000);
  clock();
  render();
}

function clock() {
  $("wall-clock").textContent = time(new Date().toISOString());
}

function rate(node, r) {
  node.textContent = percent(r);
  node.classList.remove("rate-good", "rate-warn", "rate-bad");
  const c = rateClass(r);
  if (c) node.classList.add(c);
}

function figures(prefix, devices, onlineRate, alarms) {
  rate($(`${prefix}-rate`), onlineRate);
  $(`${prefix}-counted`).textContent = devices.counted;
  $(`${prefix}-online`).textContent = devices.online;
  $(`${prefix}-offline`).textContent = devices.offline;
  $(`${prefix}-never`).textContent = devices.never;
  $(`${prefix}-faulty`).textContent = devices.faulty;
  $(`${prefix}-alarms-active`).textContent = alarms.active;
  $(`${prefix}-alarms-unacked`).textContent = alarms.unacknowledged;
}

export function render() {
  if (!document.body.classList.contains("wall")) return;
  const r = region();
  if (!r) return;
  figures("wall-region", r.devices, r.online_rate, r.alarms);
  const list = sites();
  $("wall-site").hidden = list.length === 0;
  if (list.length === 0) return;
  const s = list[index % list.length];
  $("wall-site").dataset.site = s.id;
  $("wall-site-name").textContent = s.name;
  $("wall-site-id").textContent = s.id;
  $("wall-site-pos").textContent = t("wall.position", { n: (index % list.length) + 1, total: list.length });
  figures("wall-site", s.devices, s.online_rate, s.alarms);
}
