// 站点 Site: the devices table, paged on the server (GET /api/v1/devices with site, state,
// kind, q, offset, limit). A live change of a device on the page refetches that page only.

import { api } from "./api.js";
import { keys, t, time } from "./i18n.js";
import { $, el, fill } from "./dom.js";

const LIMIT = 50;
const filter = { site: "", state: "", kind: "", q: "", offset: 0 };
let page = null;
let searchTimer = null;

export function init(onError) {
  const form = $("device-filter");
  form.addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["f-site", "f-state", "f-kind"]) {
    $(id).addEventListener("change", () => {
      filter[$(id).name] = $(id).value;
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
  for (const k of ["site", "state", "kind", "q"]) if (filter[k]) p.set(k, filter[k]);
  page = await api(`/api/v1/devices?${p}`);
  render();
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
      el("td", { text: d.id, data: { col: "id" } }),
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
}

/** Live device changes: the page must be refetched if one of them is on it, or may join
 * it (a state filter is set). */
export function changed(devices) {
  if (!page || devices.length === 0) return false;
  if (filter.state) return true;
  return devices.some((c) => page.devices.some((d) => d.site === c.site && d.id === c.device));
}
