// 站点 Site: the devices table, paged on the server (GET /api/v1/devices with site, state,
// kind, zone, system, q, offset, limit); with a site chosen, its zones with their coverage
// and its systems with their quorum state (GET /api/v1/sites/{id}/zones, /systems); a
// device's timeline and recent values (device.js) behind its id. A live change of a device
// on the page refetches that page (and the site's zones and systems) only.

import { api } from "./api.js";
import { keys, t, time } from "./i18n.js";
import { $, el, fill } from "./dom.js";
import * as device from "./device.js";

const LIMIT = 50;
const filter = { site: "", state: "", kind: "", zone: "", system: "", q: "", offset: 0 };
let page = null;
let units = null;
let searchTimer = null;
let onErr = () => {};

export function init(onError) {
  onErr = onError;
  device.init();
  const form = $("device-filter");
  form.addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["f-site", "f-state", "f-kind", "f-zone", "f-system"]) {
    $(id).addEventListener("change", () => {
      filter[$(id).name] = $(id).value;
      if (id === "f-site") {
        filter.zone = "";
        filter.system = "";
      }
      filter.offset = 0;
      refresh().catch(onError);
    });
  }
  $("f-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filter.q = $("f-q").value.trim();
      filter.offset = 0;
      refresh().catch(onError);
    }, 300);
  });
  $("page-prev").addEventListener("click", () => {
    filter.offset = Math.max(0, filter.offset - LIMIT);
    refresh().catch(onError);
  });
  $("page-next").addEventListener("click", () => {
    if (page && filter.offset + LIMIT < page.total) {
      filter.offset += LIMIT;
      refresh().catch(onError);
    }
  });
}

/** The filters' options (sites from the overview, kinds from the dictionary). */
export function options(sites) {
  const all = () => el("option", { text: t("filter.all") });
  const siteOpts = sites.map((s) => {
    const o = el("option", { text: `${s.id} · ${s.name}` });
    o.value = s.id;
    return o;
  });
  const a = all();
  a.value = "";
  fill($("f-site"), [a, ...siteOpts]);
  $("f-site").value = filter.site;
  const k = all();
  k.value = "";
  const kinds = keys("kind.").map((key) => {
    const o = el("option", { text: t(key) });
    o.value = key.slice("kind.".length);
    return o;
  });
  fill($("f-kind"), [k, ...kinds]);
  $("f-kind").value = filter.kind;
}

export async function refresh() {
  const p = new URLSearchParams({ offset: filter.offset, limit: LIMIT });
  for (const k of ["site", "state", "kind", "zone", "system", "q"]) if (filter[k]) p.set(k, filter[k]);
  const site = filter.site;
  const [list, zones, systems] = await Promise.all([
    api(`/api/v1/devices?${p}`),
    site ? api(`/api/v1/sites/${encodeURIComponent(site)}/zones`) : null,
    site ? api(`/api/v1/sites/${encodeURIComponent(site)}/systems`) : null,
  ]);
  page = list;
  units = site ? { zones, systems } : null;
  render();
}

/** The zone and system filters: the chosen site's, or none without a site. */
function groupOptions() {
  for (const [id, key, list] of [
    ["f-zone", "zone", units ? units.zones.zones : []],
    ["f-system", "system", units ? units.systems.systems : []],
  ]) {
    const all = el("option", { text: t("filter.all") });
    all.value = "";
    const opts = list.map((u) => {
      const o = el("option", { text: u.name ? `${u.id} · ${u.name}` : u.id });
      o.value = u.id;
      return o;
    });
    fill($(id), [all, ...opts]);
    $(id).value = filter[key];
    $(id).disabled = !units;
  }
}

function zoneRows(zones) {
  return zones.map((z) =>
    el(
      "tr",
      { data: { zone: z.id } },
      el("td", { text: z.id }),
      el("td", { text: z.name, data: { col: "name" } }),
      el("td", { class: "num", text: z.devices, data: { col: "devices" } }),
      el("td", { class: "num", text: z.online, data: { col: "online" } }),
      el("td", { class: "num", text: z.offline }),
      el("td", { class: "num", text: z.never }),
      el("td", {
        class: z.covered ? "state-online" : "state-offline",
        text: t(z.covered ? "zone.covered" : "zone.uncovered"),
        data: { col: "covered" },
      }),
    ),
  );
}

function systemRows(systems) {
  return systems.map((x) =>
    el(
      "tr",
      { data: { system: x.id } },
      el("td", { text: x.id }),
      el("td", { text: x.name || "—", data: { col: "name" } }),
      el("td", { text: t(`syskind.${x.kind}`) }),
      el("td", { class: "num", text: x.counted, data: { col: "counted" } }),
      el("td", { class: "num", text: x.online, data: { col: "online" } }),
      el("td", { class: "num", text: x.need, data: { col: "need" } }),
      el("td", {
        class: x.quorum_met ? "state-online" : "state-offline",
        text: t(x.quorum_met ? "system.met" : "system.unmet"),
        data: { col: "quorum" },
      }),
    ),
  );
}

function quorumText(q) {
  if (typeof q === "string") return q.toLowerCase();
  return q && q.Fraction !== undefined ? String(q.Fraction) : "—";
}

function renderUnits() {
  groupOptions();
  $("site-units").hidden = !units;
  if (!units) return;
  const z = units.zones;
  fill($("zones").tBodies[0], zoneRows(z.zones));
  $("zones-none").hidden = z.zones.length > 0;
  $("zones-summary").textContent = t("site.zones_summary", { covered: z.covered, total: z.total });
  const s = units.systems;
  fill($("systems").tBodies[0], systemRows(s.systems));
  $("systems-none").hidden = s.systems.length > 0;
  $("systems-summary").textContent = t("site.systems_summary", { quorum: quorumText(s.quorum) });
}

function idCell(d) {
  const b = el("button", { class: "link device-open", text: d.id, type: "button" });
  b.title = t("device.open", { id: d.id });
  b.addEventListener("click", () => device.open(d.site, d.id).catch(onErr));
  return el("td", { data: { col: "id" } }, b);
}

function values(d) {
  const v = Object.entries(d.last_values || {}).map(([k, x]) => `${k}=${x}`);
  return v.length ? `${v.join(", ")} ${d.unit || ""}`.trim() : "—";
}

export function render() {
  if (!page) return;
  const rows = page.devices.map((d) => {
    const state = el("td", { class: `state-${d.state}`, text: t(`state.${d.state}`), data: { col: "state" } });
    if (d.faulty) state.append(el("span", { class: "rate-bad", text: ` · ${t("state.faulty")}` }));
    return el(
      "tr",
      { data: { site: d.site, device: d.id } },
      idCell(d),
      el("td", { text: t(`kind.${d.kind}`) }),
      state,
      el("td", { text: time(d.state_since), data: { col: "since" } }),
      el("td", { text: time(d.last_seen) }),
      el("td", { text: values(d) }),
      el("td", { class: "num", text: d.latency_ms === null ? "—" : `${d.latency_ms} ms` }),
    );
  });
  fill($("devices").tBodies[0], rows);
  $("devices-none").hidden = page.devices.length > 0;
  const to = Math.min(page.offset + page.devices.length, page.total);
  $("page-range").textContent = t("pager.range", { from: page.total ? page.offset + 1 : 0, to, total: page.total });
  $("page-prev").disabled = page.offset === 0;
  $("page-next").disabled = page.offset + LIMIT >= page.total;
  renderUnits();
  device.render();
}

/** Live device changes: the page must be refetched if one of them is on it, or may join
 * it (a state filter is set). */
export function changed(devices) {
  if (!page || devices.length === 0) return false;
  if (device.changed(devices)) device.refresh().catch(onErr);
  if (filter.state || units) return true;
  return devices.some((c) => page.devices.some((d) => d.site === c.site && d.id === c.device));
}
