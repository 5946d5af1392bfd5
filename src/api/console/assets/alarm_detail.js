// One alarm's full lifecycle (GET /api/v1/alarms/{id}), opened from the board or the
// history: what the alarm is, its response time and whether the deadline was met, and
// every event (raised, escalated, acknowledged, cleared) in order, with who, the note and
// the way it came. Field text through textContent only.

import { api } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill, duration } from "./dom.js";

/** The alarm shown (its id, and its answer once read). */
let shownId = null;
let shown = null;
let failed = null;
let seq = 0;

export function init() {
  $("alarm-close").addEventListener("click", () => $("alarm-dialog").close());
  $("alarm-dialog").addEventListener("close", () => {
    shownId = null;
    shown = null;
  });
}

/** A button with the alarm's number that opens its lifecycle. */
export function opener(id) {
  const b = el("button", { class: "alarm-open", type: "button", text: id, data: { open: id } });
  b.title = t("alarms.open", { id });
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    open(id);
  });
  return b;
}

export function open(id) {
  shownId = id;
  shown = null;
  failed = null;
  render();
  if (!$("alarm-dialog").open) $("alarm-dialog").showModal();
  return load();
}

/** Read the alarm shown again (a live change of it arrived). */
export function changed(ids) {
  if (shownId !== null && ids.includes(shownId)) load();
}

async function load() {
  const id = shownId;
  const mine = ++seq;
  try {
    const a = await api(`/api/v1/alarms/${encodeURIComponent(id)}`);
    if (mine !== seq) return;
    shown = a;
    failed = null;
  } catch (e) {
    if (mine !== seq) return;
    failed = e.message;
  }
  render();
}

function num(v) {
  return v === null || v === undefined ? "—" : String(v);
}

function item(key, value, col) {
  return [el("dt", { text: t(key) }), el("dd", { text: value, data: { field: col } })];
}

function summary(a) {
  const rows = [
    ["col.site", a.site, "site"],
    ["col.device", a.device, "device"],
    ["col.kind", t(`kind.${a.kind}`), "kind"],
    ["col.type", t(`alarm.type.${a.type}`), "type"],
    ["alarm.detail.channel", a.channel || "—", "channel"],
    ["col.level", t(`level.${a.scheme}.${a.level}`), "level"],
    ["col.state", t(`alarm.state.${a.state}`), "state"],
    ["alarm.detail.first_value", num(a.value), "value"],
    ["alarm.detail.peak", num(a.peak), "peak"],
    ["col.raised", time(a.raised_at), "raised"],
    ["col.deadline", time(a.deadline_at), "deadline"],
    ["alarms.col.acked_by", a.acknowledged_by || "—", "acked_by"],
    ["alarms.col.acked_at", time(a.acknowledged_at), "acked_at"],
    ["alarm.detail.via", a.acknowledged_via || "—", "via"],
    ["alarm.detail.note", a.note || "—", "note"],
    ["alarms.col.cleared", time(a.cleared_at), "cleared"],
    ["alarm.detail.response", a.response_s === null ? "—" : duration(a.response_s * 1000), "response"],
    ["alarm.detail.outcome", t(`alarm.outcome.${a.outcome}`), "outcome"],
  ];
  return rows.flatMap(([k, v, c]) => item(k, v, c));
}

function event(a, e, i) {
  return el(
    "tr",
    { data: { event: e.event, index: i } },
    el("td", { text: time(e.at), data: { col: "at" } }),
    el("td", { text: t(`alarm.event.${e.event}`), data: { col: "event" } }),
    el("td", { text: t(`level.${a.scheme}.${e.level}`), data: { col: "level" } }),
    el("td", { class: "num", text: num(e.value), data: { col: "value" } }),
    el("td", { text: e.by || "—", data: { col: "by" } }),
    el("td", { class: "note", text: e.note || "—", data: { col: "note" } }),
    el("td", { text: e.via || "—", data: { col: "via" } }),
  );
}

export function render() {
  if (shownId === null) return;
  $("alarm-title").textContent = t("alarm.detail.title", { id: shownId });
  $("alarm-error").textContent = failed ? t("alarm.detail.failed", { msg: failed }) : "";
  const a = shown;
  $("alarm-dialog").dataset.alarm = a ? String(a.id) : "";
  fill($("alarm-summary"), a ? summary(a) : [el("dd", { class: "hint", text: failed ? "" : t("alarm.detail.loading") })]);
  fill($("alarm-events").tBodies[0], a ? (a.events || []).map((e, i) => event(a, e, i)) : []);
}
