// Calls to the gateway's API with the token as `Authorization: Bearer`. The token is kept
// in sessionStorage (this tab only): never in a URL, never in a cookie.

const KEY = "safegate.token";

export class ApiFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** GET or POST `path`; the JSON answer, or an ApiFailure with the API's message. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}), cache: "no-store" };
  if (body) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  let json = null;
  try {
    json = await res.json();
  } catch (_) {
    json = null;
  }
  if (!res.ok) {
    const msg = (json && json.error && json.error.message) || res.statusText;
    throw new ApiFailure(res.status, msg);
  }
  return json;
}
