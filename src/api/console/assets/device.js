// One device on the 站点 view: its online/offline timeline over the last 24 hours (from
// the journal: the state when the window began, then each transition) and its recent
// readings as a chart (the gateway keeps the last `gateway.recent_values` of its first
// channel), from GET /api/v1/devices/{site}/{id}/history. Refetched when the live feed
// reports a change of this device.

import { api } from "./api.js";
import { lang, t, time } from "./i18n.js";
import { $, el, fill } from "./dom.js";
import { line, rect, root, text } from "./svg.js";

const DAY_MS = 86400000;
const W = 960;
let shown = null;
let data = null;

export function init() {
  $("dd-close").addEventListener("click", () => {
    shown = null;
    $("device-detail").hidden = true;
  });
}

/** Open the detail of a device. */
export async function open(site, id) {
  shown = { site, id };
  $("device-detail").hidden = false;
  await refresh();
}

export async function refresh() {
  if (!shown) return;
  const to = new Date();
  const from = new Date(to.getTime() - DAY_MS);
  const q = new URLSearchParams({ from: from.toISOString() });
  const path = `/api/v1/devices/${encodeURIComponent(shown.site)}/${encodeURIComponent(shown.id)}/history?${q}`;
  data = await api(path);
  render();
}

/** The live feed changed `devices`: refetch if the one shown is among them. */
export function changed(devices) {
  return shown !== null && devices.some((c) => c.site === shown.site && c.device === shown.id);
}

/** [from, to, state] spans of the window: the state at its start, then each transition's. */
function spans(h) {
  const from = Date.parse(h.from);
  const end = Date.parse(h.to);
  const out = [];
  let at = from;
  let state = h.state_at_from;
  for (const tr of h.transitions) {
    const t0 = Date.parse(tr.at);
    if (t0 > at) out.push([at, t0, state]);
    at = Math.max(at, t0);
    state = tr.online ? "online" : "offline";
  }
  // The state now, even when it began at the window's end (1 ms, drawn at least 2 px).
  out.push([at, Math.max(end, at + 1), state]);
  return out;
}

function timeline(h) {
  const H = 44;
  const svgRoot = root(W, H, "device-timeline");
  const from = Date.parse(h.from);
  const span = Math.max(1, Date.parse(h.to) - from);
  const x = (ms) => ((ms - from) / span) * W;
  for (const [a, b, state] of spans(h)) {
    const r = rect(x(a), 0, Math.max(2, x(b) - x(a)), 24, `tl-${state}`);
    r.dataset.state = state;
    r.dataset.from = String(a);
    r.dataset.to = String(b);
    svgRoot.append(r);
  }
  for (let i = 0; i <= 4; i++) {
    const ms = from + (span * i) / 4;
    const tx = i === 4 ? W - 60 : x(ms) + 2;
    svgRoot.append(line(x(ms), 24, x(ms), 30, "trend-grid"));
    svgRoot.append(text(tx, 42, new Date(ms).toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit", hour12: false }), "trend-axis"));
  }
  return svgRoot;
}

function chart(h) {
  const H = 160;
  const PAD = { l: 56, r: 12, t: 10, b: 22 };
  const svgRoot = root(W, H, "device-chart");
  const pts = h.values.map((v) => ({ t: Date.parse(v.ts), v: v.value }));
  const t0 = Math.min(...pts.map((p) => p.t));
  const t1 = Math.max(...pts.map((p) => p.t));
  let lo = Math.min(...pts.map((p) => p.v));
  let hi = Math.max(...pts.map((p) => p.v));
  if (hi === lo) {
    hi += 1;
    lo -= 1;
  }
  const x = (ms) => PAD.l + (t1 === t0 ? 0 : ((ms - t0) / (t1 - t0)) * (W - PAD.l - PAD.r));
  const y = (v) => PAD.t + (1 - (v - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  for (const g of [lo, (lo + hi) / 2, hi]) {
    svgRoot.append(line(PAD.l, y(g), W - PAD.r, y(g), "trend-grid"));
    svgRoot.append(text(4, y(g) + 4, String(Number(g.toFixed(3))), "trend-axis"));
  }
  svgRoot.append(text(PAD.l, H - 4, time(new Date(t0).toISOString()), "trend-axis"));
  svgRoot.append(text(W - 150, H - 4, time(new Date(t1).toISOString()), "trend-axis"));
  const poly = svgRoot.appendChild(document.createElementNS(svgRoot.namespaceURI, "polyline"));
  poly.classList.add("trend-online");
  for (const p of pts) {
    const pt = svgRoot.createSVGPoint();
    pt.x = x(p.t);
    pt.y = y(p.v);
    poly.points.appendItem(pt);
  }
  return svgRoot;
}

function transitionRows(h) {
  return [...h.transitions].reverse().map((tr) =>
    el(
      "tr",
      {},
      el("td", { text: time(tr.at) }),
      el("td", { class: tr.online ? "state-online" : "state-offline", text: t(tr.online ? "state.online" : "state.offline") }),
      el("td", { text: tr.cause ? t(`cause.${tr.cause}`) : "—" }),
    ),
  );
}

function valueRows(h) {
  return [...h.values].reverse().map((v) =>
    el("tr", {}, el("td", { text: time(v.ts) }), el("td", { class: "num", text: `${v.value} ${h.unit}`.trim() })),
  );
}

export function render() {
  if (!data || !shown) return;
  const h = data;
  $("device-detail").dataset.site = h.site;
  $("device-detail").dataset.device = h.device;
  $("device-detail").dataset.from = h.from;
  $("dd-title").textContent = `${h.site} / ${h.device}`;
  $("dd-window").textContent = t("device.window", { from: time(h.from), to: time(h.to) });
  $("dd-at-from").textContent = t("device.at_from", { state: t(`state.${h.state_at_from}`) });
  fill($("dd-timeline"), [timeline(h)]);
  fill($("dd-transitions").tBodies[0], transitionRows(h));
  $("dd-no-transitions").hidden = h.transitions.length > 0;
  $("dd-truncated").hidden = !h.truncated;
  const any = h.values.length > 0;
  $("dd-channel").textContent = any ? t("device.channel", { channel: h.channel, unit: h.unit || "—", n: h.values.length }) : "";
  fill($("dd-chart"), any ? [chart(h)] : []);
  fill($("dd-values").tBodies[0], valueRows(h));
  $("dd-no-values").hidden = any;
}
