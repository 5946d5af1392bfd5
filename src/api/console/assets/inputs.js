// 输入 Inputs: what came in and what was refused. Rejections by reason with the recent
// ones (GET /api/v1/rejections, admin only), Modbus endpoints with their errors
// (GET /api/v1/endpoints) and the mines' last files (GET /api/v1/mines). Fetched when the
// view is opened or its refresh button pressed; the lists are small (the recent rejections
// are bounded by the gateway).

import { api } from "./api.js";
import { t, time } from "./i18n.js";
import { $, el, fill } from "./dom.js";

let admin = false;
let data = null;

export function init({ isAdmin, onError }) {
  admin = isAdmin;
  $("inputs-refresh").addEventListener("click", () => refresh().catch(onError));
}

export async function refresh() {
  const [rejections, endpoints, mines] = await Promise.all([
    admin ? api("/api/v1/rejections") : Promise.resolve(null),
    api("/api/v1/endpoints"),
    api("/api/v1/mines"),
  ]);
  data = { rejections, endpoints, mines, at: new Date().toISOString() };
  render();
}

function td(text, col, cls) {
  return el("td", { class: cls, text: text === null || text === undefined || text === "" ? "—" : text, data: col ? { col } : undefined });
}

function renderRejections(r) {
  $("rejections-admin").hidden = admin;
  $("rejections-card-body").hidden = !admin;
  if (!r) return;
  const counts = Object.entries(r.counts)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  fill(
    $("rejections").tBodies[0],
    counts.map(([reason, n]) =>
      el("tr", { data: { reason } }, td(t(`reason.${reason}`), "reason"), td(reason, "code", "code"), td(n, "count", "num")),
    ),
  );
  $("rejections-none").hidden = counts.length > 0;
  fill(
    $("recent-rejections").tBodies[0],
    r.recent.map((x) =>
      el(
        "tr",
        {},
        td(time(x.at), "at"),
        td(t(`reason.${x.reason}`), "reason"),
        td(x.topic, "topic", "code"),
        td(x.element, "element", "num"),
        td(x.detail, "detail"),
      ),
    ),
  );
  $("recent-none").hidden = r.recent.length > 0;
}

function renderEndpoints(e) {
  fill(
    $("endpoints").tBodies[0],
    e.endpoints.map((x) => {
      const state = x.connected ? "up" : "down";
      return el(
        "tr",
        { data: { endpoint: x.endpoint } },
        td(x.endpoint, "endpoint", "code"),
        td(x.transport, "transport"),
        el("td", { class: `link-${state}`, text: t(`link.${state}`) + (x.paused ? ` · ${t("link.paused")}` : ""), data: { col: "state" } }),
        td(time(x.since), "since"),
        td(x.devices, "devices", "num"),
        td(x.polls, "polls", "num"),
        td(x.successes, "successes", "num"),
        td(x.timeouts, "timeouts", "num"),
        td(x.transport_errors, "transport_errors", "num"),
        td(x.reconnects, "reconnects", "num"),
        td(x.last_error, "last_error"),
      );
    }),
  );
  $("endpoints-none").hidden = e.endpoints.length > 0;
  const down = e.endpoints.filter((x) => !x.connected).length;
  $("endpoints-summary").textContent = t("inputs.endpoints_summary", { total: e.total, down });
}

function lastFiles(m) {
  const files = Object.entries(m.last_files || {});
  if (files.length === 0) return "—";
  return files
    .map(([type, f]) => t("inputs.last_file", { type, name: f.name, at: time(f.data_ms), lag: Math.round(f.lag_ms / 1000) }))
    .join("\n");
}

function renderMines(m) {
  fill(
    $("mines").tBodies[0],
    m.mines.map((x) => {
      const refused = Object.values(x.files_refused || {}).reduce((a, b) => a + b, 0);
      return el(
        "tr",
        { data: { mine: x.mine_code } },
        td(x.mine_code, "mine_code", "code"),
        td(x.site, "site"),
        el("td", { class: "lines", text: lastFiles(x), data: { col: "last_files" } }),
        td(x.files_applied, "files_applied", "num"),
        td(refused, "files_refused", "num"),
        td(x.records_accepted, "records_accepted", "num"),
        td(x.records_refused, "records_refused", "num"),
      );
    }),
  );
  $("mines-none").hidden = m.mines.length > 0;
}

export function render() {
  if (!data) return;
  renderRejections(data.rejections);
  renderEndpoints(data.endpoints);
  renderMines(data.mines);
  $("inputs-updated").textContent = t("overview.updated", { t: time(data.at) });
}
