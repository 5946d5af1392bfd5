// 告警 Alarms: the live board of open alarms (GET /api/v1/alarms?state=open, then kept up to
// date from the live feed's alarm views), overdue first, with the time left to each
// deadline; operators acknowledge with a note (POST /api/v1/alarms/{id}/ack). An alarm's
// number opens its lifecycle (alarm_detail.js); the history is alarm_history.js.

import { api } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill, duration } from "./dom.js";
import * as detail from "./alarm_detail.js";

/** The board loads at most this many open alarms (the newest). */
const MAX = 1000;
const open = new Map();
let truncated = false;
let canAck = false;
let by = "console";
let acking = null;
let overdueShown = "";

export function init({ ack, name, onError }) {
  canAck = ack;
  by = name || "console";
  $("ack-cancel").addEventListener("click", () => $("ack-dialog").close());
  $("ack-form").addEventListener("submit", (e) => {
    e.preventDefault();
    submit().catch(onError);
  });
  setInterval(tick, 1000);
}

export async function refresh() {
  const list = await api(`/api/v1/alarms?state=open&limit=${MAX}`);
  truncated = list.count >= MAX;
  open.clear();
  for (const a of list.alarms) open.set(a.id, a);
  render();
}

/** Alarm views from the live feed (or an acknowledgement's answer). */
export function upsert(alarms) {
  for (const a of alarms) {
    if (a.state === "cleared_acked") open.delete(a.id);
    else open.set(a.id, a);
  }
  render();
  detail.changed(alarms.map((a) => a.id));
}

export function count() {
  return open.size;
}

function overdue(a, now) {
  return a.acknowledged_ms === null && a.deadline_ms < now;
}

function sorted(now) {
  const rank = (a) => (overdue(a, now) ? 0 : a.acknowledged_ms === null ? 1 : 2);
  return [...open.values()].sort((a, b) => rank(a) - rank(b) || a.deadline_ms - b.deadline_ms || a.id - b.id);
}

function left(a, now) {
  if (a.acknowledged_ms !== null) return t("alarms.acked_by", { by: a.acknowledged_by || "—" });
  if (a.deadline_ms < now) return t("alarms.overdue", { d: duration(now - a.deadline_ms) });
  return duration(a.deadline_ms - now);
}

function row(a, now) {
  const late = overdue(a, now);
  const cell = el("td", { class: late ? "time-left overdue" : "time-left", text: left(a, now), data: { col: "left" } });
  const act = el("td", { data: { col: "ack" } });
  if (canAck && a.acknowledged_ms === null) {
    const b = el("button", { class: "ack", type: "button", text: t("ack.button") });
    b.addEventListener("click", () => ask(a.id));
    act.append(b);
  } else if (a.note) {
    act.append(el("span", { class: "note", text: a.note }));
  }
  return el(
    "tr",
    { class: late ? "overdue" : "", data: { alarm: a.id, state: a.state } },
    el("td", { class: "num", data: { col: "id" } }, detail.opener(a.id)),
    el("td", { text: a.site }),
    el("td", { text: a.device }),
    el("td", { text: t(`alarm.type.${a.type}`) }),
    el("td", { text: t(`level.${a.scheme}.${a.level}`) }),
    el("td", { text: t(`alarm.state.${a.state}`), data: { col: "state" } }),
    el("td", { text: time(a.raised_at) }),
    el("td", { text: time(a.deadline_at) }),
    cell,
    act,
  );
}

export function render() {
  const now = Date.now();
  const list = sorted(now);
  overdueShown = list.filter((a) => overdue(a, now)).map((a) => a.id).join(",");
  fill($("alarms").tBodies[0], list.map((a) => row(a, now)));
  $("alarms-none").hidden = list.length > 0;
  $("alarms-truncated").hidden = !truncated;
  $("alarms-truncated").textContent = t("alarms.truncated", { n: MAX });
}

/** Each second: the time left; the order again when an alarm became overdue. */
function tick() {
  const now = Date.now();
  const list = sorted(now);
  if (list.filter((a) => overdue(a, now)).map((a) => a.id).join(",") !== overdueShown) {
    render();
    return;
  }
  for (const tr of $("alarms").tBodies[0].rows) {
    const a = open.get(Number(tr.dataset.alarm));
    const cell = tr.querySelector('[data-col="left"]');
    if (a && cell) cell.textContent = left(a, now);
  }
}

function ask(id) {
  acking = id;
  $("ack-title").textContent = t("ack.title", { id });
  $("ack-note").value = "";
  $("ack-error").textContent = "";
  $("ack-dialog").showModal();
}

async function submit() {
  const id = acking;
  try {
    const res = await api(`/api/v1/alarms/${encodeURIComponent(id)}/ack`, {
      method: "POST",
      body: { by, note: $("ack-note").value },
    });
    $("ack-dialog").close();
    upsert([res.alarm]);
  } catch (e) {
    $("ack-error").textContent = t("ack.failed", { msg: e.message });
  }
}
