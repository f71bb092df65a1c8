// What every part of the page shares: the signed-in session, the status line, error
// reporting and audio elements fed from blob: URLs. Every text from the server (a
// caller's name above all) goes into the page as textContent, never as HTML.

import { ApiError } from "./api.js";

export const $ = (id) => document.getElementById(id);

// The signed-in Session (api.js) or null; onUnauthorized is set by app.js.
export const current = { session: null, onUnauthorized: () => {} };
const urls = new Map(); // element id -> blob: URL it plays, revoked when replaced

export function say(text, kind = "info") {
  const status = $("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

export function failed(error, what) {
  if (error instanceof ApiError && error.status === 401) {
    current.onUnauthorized(`Signed out: ${error.message || "the server did not accept the password"}.`);
    return;
  }
  if (error instanceof ApiError && error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : "";
    say(`Too many failed attempts.${wait}`, "error");
    return;
  }
  const reason = error instanceof ApiError ? error.message : "the server cannot be reached";
  say(`${what} failed: ${reason}`, "error");
}

export function play(elementId, blob) {
  const element = $(elementId);
  const old = urls.get(elementId);
  if (old) URL.revokeObjectURL(old);
  const url = URL.createObjectURL(blob);
  urls.set(elementId, url);
  element.src = url;
  return element;
}

export function releaseAudio() {
  for (const url of urls.values()) URL.revokeObjectURL(url);
  urls.clear();
}

export function duration(seconds) {
  const total = Math.round(seconds || 0);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}
