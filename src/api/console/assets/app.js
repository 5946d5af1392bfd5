// The console's entry: the token (if the API wants one), the caller's role, the views and
// the live feed. See docs/console.md.

import * as i18n from "./i18n.js";
import { api, ApiFailure, setToken, token } from "./api.js";
import { listen } from "./live.js";
import { $ } from "./dom.js";
import * as overview from "./overview.js";
import * as site from "./site.js";
import * as alarms from "./alarms.js";
import * as alarmHistory from "./alarm_history.js";
import * as detail from "./alarm_detail.js";
import * as report from "./report.js";
import * as inputs from "./inputs.js";
import * as wall from "./wall.js";
import * as trends from "./trends.js";

const VIEWS = ["overview", "site", "alarms", "indicators", "trends", "inputs"];
/** The views that need an evaluator (the API refuses the indicators to others). */
const EVALUATOR_VIEWS = ["indicators", "trends"];
const RANK = { viewer: 1, operator: 2, evaluator: 3, admin: 4 };
let who = null;
let feed = null;
let liveState = "connecting";

/** The views the caller's role may open (the API refuses the rest anyway). */
function allowed(view) {
  if (EVALUATOR_VIEWS.includes(view)) return who !== null && RANK[who.role] >= RANK.evaluator;
  return VIEWS.includes(view);
}

function showError(e) {
  const box = $("error");
  box.textContent = i18n.t("error.load", { msg: e && e.message ? e.message : String(e) });
  box.hidden = false;
}

function labels() {
  i18n.apply();
  if (who) {
    $("who").textContent = who.auth ? `${who.name} · ${i18n.t(`role.${who.role}`)}` : i18n.t("who.open");
  }
  $("live").textContent = i18n.t(`live.${liveState}`);
  $("wall-live").textContent = i18n.t(`live.${liveState}`);
  overview.render();
  site.options(overview.sites());
  site.render();
  alarms.render();
  alarmHistory.options(overview.sites());
  alarmHistory.render();
  detail.render();
  report.render();
  inputs.render();
  wall.render();
  if (allowed("trends")) {
    trends.options(overview.sites());
    trends.render();
  }
}

function show(view) {
  const v = allowed(view) ? view : "overview";
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== v;
  for (const b of $("nav").querySelectorAll("button")) b.classList.toggle("active", b.dataset.view === v);
  if (location.hash !== `#${v}`) history.replaceState(null, "", `#${v}`);
  // The inputs and the alarm history are fetched when looked at, not kept live.
  if (v === "inputs" && who) inputs.refresh().catch(showError);
  if (v === "alarms" && who) alarmHistory.refresh().catch(showError);
  if (v === "trends" && who) trends.refresh().catch(showError);
}

function login(message) {
  $("login").hidden = false;
  $("nav").hidden = true;
  $("login-error").textContent = message ? i18n.t(message) : "";
  $("token").focus();
}

/** A live event: what it says changed is fetched or applied, nothing more. */
function onEvent(name, data) {
  if (name === "changes") {
    if (data.devices.length > 0) {
      overview.refresh().catch(showError);
      if (site.changed(data.devices)) site.refresh().catch(showError);
    }
    if (data.alarms.length > 0) {
      alarms.upsert(data.alarms);
      overview.refresh().catch(showError);
    }
  } else if (name === "resync") {
    Promise.all([overview.refresh(), site.refresh(), alarms.refresh()]).catch(showError);
  } else if (name === "unauthorized") {
    setToken(null);
    login("login.invalid");
  }
}

function onLive(state) {
  liveState = state;
  $("live").hidden = false;
  $("live").dataset.state = state;
  $("live").textContent = i18n.t(`live.${state}`);
  $("wall-live").dataset.state = state;
  $("wall-live").textContent = i18n.t(`live.${state}`);
}

async function start() {
  const tried = token() !== null;
  try {
    who = await api("/api/v1/whoami");
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) {
      setToken(null);
      return login(tried ? "login.invalid" : "");
    }
    if (e instanceof ApiFailure && e.status === 403) {
      setToken(null);
      return login("login.forbidden");
    }
    return showError(e);
  }
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = !who.auth;
  document.body.dataset.role = who.role;
  alarms.init({ ack: RANK[who.role] >= RANK.operator, name: who.name, onError: showError });
  detail.init();
  alarmHistory.init(showError);
  overview.init(showError);
  site.init(showError);
  report.init(showError);
  inputs.init({ isAdmin: who.role === "admin", onError: showError });
  trends.init(showError);
  for (const v of EVALUATOR_VIEWS) $("nav").querySelector(`[data-view=${v}]`).hidden = !allowed(v);
  labels();
  if (wall.requested()) {
    overview.onUpdate(wall.render);
    wall.start(overview.sites, overview.region);
  } else {
    show(location.hash.slice(1));
  }
  feed = listen(onEvent, onLive);
  await Promise.all([overview.refresh(), alarms.refresh()]);
  site.options(overview.sites());
  alarmHistory.options(overview.sites());
  if (allowed("trends")) trends.options(overview.sites());
  await site.refresh();
  if (allowed("indicators")) await report.refresh();
  document.body.dataset.ready = "true";
}

async function main() {
  await i18n.load();
  labels();
  $("lang").addEventListener("click", () => {
    i18n.toggle();
    labels();
  });
  for (const b of $("nav").querySelectorAll("button")) b.addEventListener("click", () => show(b.dataset.view));
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    start().catch(showError);
  });
  $("logout").addEventListener("click", () => {
    if (feed) feed.stop();
    setToken(null);
    location.reload();
  });
  await start();
}

main().catch(showError);
