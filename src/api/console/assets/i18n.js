// The wording of the console: every label comes from i18n.json (one dictionary, zh-CN
// first, English). A missing key shows as ⟦key⟧ and is reported on the console, so a test
// finds it.

const LANGS = ["zh-CN", "en"];
let dict = {};
let current = "zh-CN";

export async function load() {
  const res = await fetch("/console/i18n.json", { cache: "no-cache" });
  dict = await res.json();
  const saved = localStorage.getItem("safegate.lang");
  current = LANGS.includes(saved) ? saved : "zh-CN";
}

export function lang() {
  return current;
}

export function toggle() {
  current = current === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("safegate.lang", current);
}

/** The text of `key`, `{name}` placeholders filled from `vars` (as text). */
export function t(key, vars = {}) {
  const s = dict[current] && dict[current][key];
  if (s === undefined) {
    console.error(`i18n: no ${current} text for ${key}`);
    return `⟦${key}⟧`;
  }
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** Fill every `data-i18n` element under `root` with its text. */
export function apply(root = document) {
  document.documentElement.lang = current;
  for (const e of root.querySelectorAll("[data-i18n]")) {
    e.textContent = t(e.dataset.i18n);
  }
}

/** A time as the operator reads it, in the browser's zone. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(current, { hour12: false });
}

/** The dictionary's keys under `prefix` (`kind.` gives every device kind), in file order. */
export function keys(prefix) {
  return Object.keys(dict["zh-CN"] || {}).filter((k) => k.startsWith(prefix));
}
