// The live feed, GET /api/v1/events (Server-Sent Events). Read with fetch, not EventSource:
// EventSource cannot send the Authorization header, and the token must not go in the URL.
// On a broken stream it reconnects (1 s, doubling to 30 s) and asks for a resync, since
// changes may have been missed meanwhile.
//
// One stream per browser, not per tab: over HTTP/1.1 a browser keeps at most 6 connections
// to a host, and a stream holds one for as long as the page is open, so the 7th tab of the
// console would wait forever for its first request. The tabs elect one of them (a Web Lock:
// held while the tab lives, passed on when it closes) to hold the stream and relay what it
// reads to the others over a BroadcastChannel (same origin only). Where the browser has no
// Web Locks (a page served over plain HTTP from an address other than localhost is not a
// secure context), each tab keeps its own stream.

import { headers } from "./api.js";

const SHARED = "safegate.live";

export function listen(onEvent, onState) {
  if (!(navigator.locks && typeof BroadcastChannel !== "undefined")) return stream(onEvent, onState);
  const bc = new BroadcastChannel(SHARED);
  let own = null;
  let stopped = false;
  let release = null;
  let state = "connecting";
  bc.onmessage = (m) => {
    const msg = m.data || {};
    if (own) {
      // A tab that just opened asks the holder how the stream is.
      if (msg.kind === "state?") bc.postMessage({ kind: "state", state });
      return;
    }
    if (msg.kind === "event") onEvent(msg.name, msg.data);
    else if (msg.kind === "state") onState(msg.state);
  };
  onState("connecting");
  bc.postMessage({ kind: "state?" });
  navigator.locks
    .request(SHARED, () => new Promise((resolve) => {
      if (stopped) return resolve();
      release = resolve;
      let opened = false;
      own = stream(
        (name, data) => {
          if (name === "unauthorized") {
            // This tab's token only: it signs out and lets another tab hold the stream.
            stopped = true;
            own = null;
            bc.close();
            resolve();
            return onEvent(name, data);
          }
          onEvent(name, data);
          bc.postMessage({ kind: "event", name, data });
          if (name === "hello" && !opened) {
            opened = true;
            // The stream is new: whatever changed since the last holder closed is unknown.
            onEvent("resync", { reason: "new_holder" });
            bc.postMessage({ kind: "event", name: "resync", data: { reason: "new_holder" } });
          }
        },
        (st) => {
          state = st;
          onState(st);
          bc.postMessage({ kind: "state", state: st });
        },
      );
    }))
    .catch(() => {});
  return {
    stop: () => {
      stopped = true;
      if (own) own.stop();
      if (release) release();
      bc.close();
    },
  };
}

/** This tab's own stream. */
function stream(onEvent, onState) {
  let delay = 1000;
  let stopped = false;
  const ctl = { stop: () => { stopped = true; abort.abort(); } };
  let abort = new AbortController();
  (async () => {
    let first = true;
    while (!stopped) {
      onState("connecting");
      try {
        const res = await fetch("/api/v1/events", { headers: headers({ Accept: "text/event-stream" }), cache: "no-store", signal: abort.signal });
        if (res.status === 401 || res.status === 403) {
          onState("closed");
          onEvent("unauthorized", {});
          return;
        }
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        if (!first) onEvent("resync", { reason: "reconnected" });
        first = false;
        await read(res.body, (name, data) => {
          if (name === "hello") {
            delay = 1000;
            onState("open");
          }
          onEvent(name, data);
        });
      } catch (e) {
        if (stopped) return;
      }
      onState("closed");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 30000);
      abort = new AbortController();
    }
  })();
  return ctl;
}

/** Parse an event stream: blocks separated by a blank line, `event:` and `data:` lines. */
async function read(body, emit) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") name = val;
        else if (field === "data") data.push(val);
      }
      if (data.length === 0) continue;
      let parsed = null;
      try {
        parsed = JSON.parse(data.join("\n"));
      } catch (_) {
        continue;
      }
      emit(name, parsed);
    }
  }
}
