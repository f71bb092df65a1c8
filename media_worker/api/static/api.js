// The HTTP API of issue 14 (docs/api.md), as the page uses it. The SIP credentials go as
// HTTP Basic on every request and live in sessionStorage only: closing the tab forgets
// them, and no cookie exists for another site to ride on.

const STORE_KEY = "voicemail.login";
const BASE = "api/v1"; // relative: the page works behind a reverse proxy's path prefix
const TIMEOUT_MS = 60_000; // a server that stops answering fails the request, not the page

export class ApiError extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// btoa() takes Latin-1 only: encode the UTF-8 bytes so any password works.
function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return `Basic ${btoa(text)}`;
}

export function parseAddress(text) {
  const address = text.trim().replace(/^sips?:/i, "");
  const at = address.lastIndexOf("@");
  if (at <= 0 || at === address.length - 1) return null;
  const user = address.slice(0, at);
  const domain = address.slice(at + 1).toLowerCase();
  // "." and ".." would be path steps in the URL, not a mailbox
  if ([user, domain].some((part) => part === "." || part === "..")) return null;
  return { user, domain };
}

export class Session {
  constructor(user, domain, authorization) {
    this.user = user;
    this.domain = domain;
    this.authorization = authorization;
  }

  static make(address, password) {
    return new Session(address.user, address.domain, basic(`${address.user}@${address.domain}`, password));
  }

  static load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
      if (saved && saved.user && saved.domain && saved.authorization) {
        return new Session(saved.user, saved.domain, saved.authorization);
      }
    } catch {
      // a damaged entry is the same as none
    }
    return null;
  }

  save() {
    sessionStorage.setItem(
      STORE_KEY,
      JSON.stringify({ user: this.user, domain: this.domain, authorization: this.authorization }),
    );
  }

  static forget() {
    sessionStorage.removeItem(STORE_KEY);
  }

  get address() {
    return `${this.user}@${this.domain}`;
  }

  mailboxPath(...rest) {
    const parts = [this.domain, this.user, ...rest].map(encodeURIComponent);
    return `${BASE}/mailboxes/${parts.join("/")}`;
  }

  // credentials "omit": the browser adds no cookie and never opens its own password
  // dialog on a 401; the Authorization header set here still goes.
  async request(path, { method = "GET", json, body, contentType, signal, etag } = {}) {
    const headers = { Authorization: this.authorization };
    if (etag) headers["If-None-Match"] = etag;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (contentType) {
      headers["Content-Type"] = contentType;
    }
    const response = await fetch(path, {
      method,
      headers,
      body,
      signal: signal || AbortSignal.timeout(TIMEOUT_MS),
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok && !(etag && response.status === 304)) throw await errorOf(response);
    return response;
  }

  async json(path, options) {
    const response = await this.request(path, options);
    return response.status === 204 ? null : response.json();
  }

  mailbox() {
    return this.json(this.mailboxPath());
  }

  // The list is polled: with the last answer's ETag, an unchanged list costs a 304.
  async messages() {
    const response = await this.request(this.mailboxPath("messages"), { etag: this.listTag });
    if (response.status === 304 && this.list) return this.list;
    this.list = await response.json();
    this.listTag = response.headers.get("ETag");
    return this.list;
  }

  // The audio of a message as a Blob, MP3 first (small, plays everywhere); WAV when the
  // server has no MP3 encoder. Returns { blob, format, filename }.
  async audio(name, formats = ["mp3", "wav"]) {
    let last = null;
    for (const format of formats) {
      try {
        const response = await this.request(
          `${this.mailboxPath("messages", name, "audio")}?format=${format}`,
        );
        return { blob: await response.blob(), format, filename: filenameOf(response, name, format) };
      } catch (error) {
        if (!(error instanceof ApiError) || ![400, 406, 415, 422, 501].includes(error.status)) {
          throw error;
        }
        last = error;
      }
    }
    throw last;
  }

  setNew(name, isNew) {
    return this.json(this.mailboxPath("messages", name), { method: "PATCH", json: { new: isNew } });
  }

  deleteMessage(name) {
    return this.json(this.mailboxPath("messages", name), { method: "DELETE" });
  }

  async greeting(type) {
    const response = await this.request(this.mailboxPath("greetings", type));
    return response.blob();
  }

  putGreeting(type, blob, contentType) {
    return this.json(this.mailboxPath("greetings", type), {
      method: "PUT",
      body: blob,
      contentType: contentType || blob.type || "application/octet-stream",
    });
  }

  deleteGreeting(type) {
    return this.json(this.mailboxPath("greetings", type), { method: "DELETE" });
  }

  setPin(pin) {
    return this.json(this.mailboxPath("pin"), { method: "PUT", json: { pin } });
  }

  clearPin() {
    return this.json(this.mailboxPath("pin"), { method: "DELETE" });
  }

  updateSettings(changes) {
    return this.json(this.mailboxPath("settings"), { method: "PATCH", json: changes });
  }
}

// FastAPI says what went wrong in "detail": a string, or a list of field errors.
async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    const detail = body && body.detail;
    if (typeof detail === "string") {
      message = detail;
    } else if (Array.isArray(detail) && detail.length) {
      message = detail.map((item) => item.msg || JSON.stringify(item)).join("; ");
    }
  } catch {
    // not JSON: the status line says enough
  }
  const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return new ApiError(response.status, message, Number.isFinite(retry) ? retry : null);
}

function filenameOf(response, name, format) {
  const header = response.headers.get("Content-Disposition") || "";
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      // fall through to the plain form
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : `${name}.${format}`;
}
