// Every request to the API carries the bearer token; a 401 signs the user out.
// No DOM or storage at import time: `node --test` imports errorText from here.
const KEY = "takt.token";

export function getToken() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
}

export function setToken(token, remember) {
  sessionStorage.setItem(KEY, token);
  if (remember) localStorage.setItem(KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

// The readable message of an error body. The API's format (api/errors.py) is
// {error, status, timestamp, path, request_id} and, for an invalid request,
// details: [{loc, msg, type}]. Never the raw JSON.
export function errorText(body, fallback) {
  if (!body || typeof body !== "object") return fallback;
  let text = typeof body.error === "string" && body.error ? body.error : fallback;
  if (Array.isArray(body.details) && body.details.length > 0) {
    const parts = body.details.slice(0, 3).map((d) => {
      const where = (d.loc || []).filter((p) => p !== "query" && p !== "body" && p !== "path").join(".");
      return where ? `${where}: ${d.msg}` : String(d.msg);
    });
    text += ` (${parts.join("; ")})`;
  }
  return text;
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function api(path, { method = "GET", token = getToken(), signal, body } = {}) {
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    signal,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText || "error";
    try {
      detail = errorText(await response.json(), detail);
    } catch { /* not JSON: keep the status text */ }
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, detail);
  }
  return response.json();
}
