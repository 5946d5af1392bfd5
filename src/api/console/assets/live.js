// The live feed, GET /api/v1/events (Server-Sent Events). Read with fetch, not EventSource:
// EventSource cannot send the Authorization header, and the token must not go in the URL.
// On a broken stream it reconnects (1 s, doubling to 30 s) and asks for a resync, since
// changes may have been missed meanwhile.

import { headers } from "./api.js";

export function listen(onEvent, onState) {
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
