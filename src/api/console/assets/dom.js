// Building elements from data: text only (textContent), never HTML from a string.

/** `el("td", {class: "num", text: 3, data: {col: "online"}}, child...)` */
export function el(tag, opts = {}, ...children) {
  const e = document.createElement(tag);
  if (opts.class) e.className = opts.class;
  if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
  if (opts.data) {
    for (const [k, v] of Object.entries(opts.data)) e.dataset[k] = String(v);
  }
  if (opts.type) e.type = opts.type;
  for (const c of children) if (c) e.append(c);
  return e;
}

/** Replace the children of `parent`. */
export function fill(parent, children) {
  parent.replaceChildren(...children);
}

export function $(id) {
  return document.getElementById(id);
}

/** A rate in per cent, or — when nothing is counted. */
export function percent(rate) {
  if (!rate || rate.value === null || rate.value === undefined) return "—";
  return `${(rate.value * 100).toFixed(1)}%`;
}

/** The colour class of a rate: ≥ 95% good, ≥ 80% warning, below bad. */
export function rateClass(rate) {
  if (!rate || rate.value === null || rate.value === undefined) return "";
  if (rate.value >= 0.95) return "rate-good";
  if (rate.value >= 0.8) return "rate-warn";
  return "rate-bad";
}

/** Seconds as h:mm:ss. */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
}
