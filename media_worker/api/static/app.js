// Visual voicemail: the page's behaviour. Every text from the server (a caller's name
// above all) goes into the page as textContent, never as HTML.

import { ApiError, Session, parseAddress } from "./api.js";
import { Recorder } from "./recorder.js";

const POLL_SECONDS = 5; // a new message shows within this long, without a reload
const GREETING_TYPE = "vm"; // the greeting the voicemail app plays (SEMS typ=vm)
const RECORD_SECONDS = 120;

const $ = (id) => document.getElementById(id);
let session = null;
let timer = null;
let shown = ""; // the last list drawn, to redraw only on a change
const urls = new Map(); // element id -> blob: URL it plays, revoked when replaced
let recorder = null;
let pending = null; // a recorded or chosen greeting not saved yet: { blob, type }
let ownGreeting = GREETING_TYPE; // the mailbox's greeting_type setting, once loaded

function say(text, kind = "info") {
  const status = $("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

function failed(error, what) {
  if (error instanceof ApiError && error.status === 401) {
    signOut(`Signed out: ${error.message || "the server did not accept the password"}.`);
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

function play(elementId, blob) {
  const element = $(elementId);
  const old = urls.get(elementId);
  if (old) URL.revokeObjectURL(old);
  const url = URL.createObjectURL(blob);
  urls.set(elementId, url);
  element.src = url;
  return element;
}

// ----- signing in and out -----

async function signIn(event) {
  event.preventDefault();
  const address = parseAddress($("login-user").value);
  const password = $("login-password").value;
  if (!address || !password) {
    say("Enter your SIP address (user@domain) and your password.", "error");
    $(address ? "login-password" : "login-user").focus();
    return;
  }
  const candidate = Session.make(address, password);
  $("login-submit").disabled = true;
  say("Signing in…");
  try {
    await candidate.mailbox();
  } catch (error) {
    $("login-submit").disabled = false;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      say("Wrong SIP address or password.", "error");
    } else {
      failed(error, "Signing in");
    }
    return;
  }
  $("login-submit").disabled = false;
  $("login-password").value = "";
  candidate.save();
  await enter(candidate);
}

async function enter(active) {
  session = active;
  $("who-name").textContent = session.address;
  $("pin-user").value = session.address;
  $("who").hidden = false;
  $("login").hidden = true;
  $("app").hidden = false;
  say("");
  shown = "";
  await Promise.all([refresh(), loadMailbox()]);
  $("inbox-title").focus();
  schedule();
}

function signOut(message = "Signed out.") {
  Session.forget();
  session = null;
  if (recorder) {
    recorder.stop(); // releases the microphone; the recording is dropped
    recorder = null;
    $("record").textContent = "Record";
    $("record").setAttribute("aria-pressed", "false");
  }
  discardGreeting();
  clearTimeout(timer);
  for (const url of urls.values()) URL.revokeObjectURL(url);
  urls.clear();
  $("messages").replaceChildren();
  $("player").removeAttribute("src");
  $("app").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  say(message);
  $("login-user").focus();
}

// ----- the message list -----

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (session && !document.hidden) await refresh();
    if (session) schedule();
  }, POLL_SECONDS * 1000);
}

let listFailed = false; // the last poll failed: its error is on the status line

async function refresh() {
  if (!session) return;
  try {
    const { messages } = await session.messages();
    draw(messages);
    if (listFailed) say("");
    listFailed = false;
  } catch (error) {
    failed(error, "Loading the messages");
    listFailed = true;
  }
}

// A redraw replaces the rows: give the keyboard focus back to the same message's
// button (the read/new toggle becomes its counterpart), or to the list's heading.
function refocus(name, action) {
  const twin = { read: "unread", unread: "read" }[action] || action;
  const row = [...document.querySelectorAll("li.message")].find((li) => li.dataset.name === name);
  const target = row && row.querySelector(`button[data-action="${twin}"]`);
  (target || $("inbox-title")).focus();
}

function sortKey(a, b) {
  if (a.new !== b.new) return a.new ? -1 : 1; // new first
  return b.received_at_unix - a.received_at_unix; // then newest first
}

function draw(messages) {
  const sorted = [...messages].sort(sortKey);
  const key = JSON.stringify(sorted.map((m) => [m.name, m.new]));
  const fresh = sorted.filter((m) => m.new).length;
  $("counts").textContent = `${fresh} new, ${sorted.length - fresh} saved`;
  $("empty").hidden = sorted.length > 0;
  if (key === shown) return;
  const had = shown;
  shown = key;
  $("messages").replaceChildren(...sorted.map(row));
  if (had && sorted.some((m) => m.new && !had.includes(JSON.stringify(m.name)))) {
    say("A new message arrived.");
  }
}

function caller(sender) {
  // "Alice" <sip:alice@example.com> -> Alice; a quoted name may hold < and escaped quotes.
  const text = sender || "";
  const quoted = /^\s*"((?:[^"\\]|\\.)*)"\s*<([^>]*)>/.exec(text);
  if (quoted) return { name: quoted[1].replace(/\\(.)/g, "$1") || quoted[2], uri: quoted[2] };
  const plain = /^\s*([^<]*?)\s*<([^>]*)>/.exec(text);
  if (plain) return { name: plain[1] || plain[2], uri: plain[2] };
  return { name: text || "Unknown caller", uri: "" };
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function duration(seconds) {
  const total = Math.round(seconds || 0);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

function button(label, text, action, className = "") {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.dataset.action = action;
  if (className) element.className = className;
  return element;
}

function row(message) {
  const who = caller(message.sender);
  const at = when.format(new Date(message.received_at_unix * 1000));
  const spoken = `from ${who.name}, ${at}`;
  const item = document.createElement("li");
  item.className = message.new ? "message new" : "message";
  item.dataset.name = message.name;
  item.dataset.new = String(Boolean(message.new));

  const head = document.createElement("div");
  head.className = "message-head";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = message.new ? "New" : "Saved";
  const name = document.createElement("strong");
  name.className = "from";
  name.textContent = who.name;
  name.title = who.uri || who.name;
  head.append(badge, name);

  const meta = document.createElement("div");
  meta.className = "meta";
  const time = document.createElement("time");
  time.dateTime = message.received_at;
  time.textContent = at;
  const length = document.createElement("span");
  length.className = "duration";
  length.textContent = duration(message.duration_s);
  length.setAttribute("aria-label", `${Math.round(message.duration_s || 0)} seconds`);
  meta.append(time, " · ", length);

  const actions = document.createElement("div");
  actions.className = "row actions";
  actions.append(
    button(`Play message ${spoken}`, "Play", "play"),
    button(`Download message ${spoken}`, "Download", "download", "quiet"),
    message.new
      ? button(`Mark message ${spoken} as read`, "Mark read", "read", "quiet")
      : button(`Mark message ${spoken} as new`, "Mark new", "unread", "quiet"),
    button(`Delete message ${spoken}`, "Delete", "delete", "danger"),
  );
  item.append(head, meta, actions);
  return item;
}

async function onMessageAction(event) {
  const target = event.target.closest("button[data-action]");
  if (!target || !session) return;
  const item = target.closest("li.message");
  const name = item.dataset.name;
  const label = item.querySelector(".from").textContent;
  target.disabled = true;
  try {
    switch (target.dataset.action) {
      case "play":
        await playMessage(name, label, item.classList.contains("new"));
        break;
      case "download":
        await download(name);
        break;
      case "read":
      case "unread":
        await session.setNew(name, target.dataset.action === "unread");
        say(target.dataset.action === "read" ? "Marked as read." : "Marked as new.");
        await refresh();
        refocus(name, target.dataset.action);
        break;
      case "delete":
        if (!window.confirm(`Delete the message from ${label}?`)) break;
        await session.deleteMessage(name);
        if ($("player").dataset.name === name) stopPlayer();
        say("Message deleted.");
        await refresh();
        refocus(name, "delete");
        break;
      default:
        break;
    }
  } catch (error) {
    failed(error, target.textContent);
  } finally {
    target.disabled = false;
  }
}

async function playMessage(name, label, isNew) {
  say("Loading the message…");
  const { blob, format } = await session.audio(name);
  const player = play("player", blob);
  player.dataset.name = name;
  player.dataset.format = format;
  $("now-playing").textContent = `Message from ${label}`;
  $("player-box").hidden = false;
  say("");
  try {
    await player.play();
  } catch {
    say("Press play on the player below to listen.");
  }
  // Like the voicebox: a message listened to is no longer new.
  if (isNew) {
    await session.setNew(name, false);
    await refresh();
    refocus(name, "play");
  }
}

// A browser without an MP3 decoder gets the WAV instead.
async function playerFailed() {
  const player = $("player");
  const name = player.dataset.name;
  if (!name || !session) return;
  if (player.dataset.format !== "mp3") {
    say("This message cannot be played here.", "error");
    return;
  }
  try {
    const { blob, format } = await session.audio(name, ["wav"]);
    play("player", blob).dataset.format = format;
    await player.play().catch(() => say("Press play on the player below to listen."));
  } catch (error) {
    failed(error, "Playing the message");
  }
}

function stopPlayer() {
  const player = $("player");
  player.pause();
  delete player.dataset.name;
  delete player.dataset.format;
  player.removeAttribute("src");
  $("player-box").hidden = true;
}

async function download(name) {
  const { blob, filename } = await session.audio(name);
  const link = document.createElement("a");
  const url = URL.createObjectURL(blob);
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ----- mailbox, greeting and settings -----

async function loadMailbox() {
  try {
    const box = await session.mailbox();
    const settings = box.settings || {};
    $("setting-mode").value = settings.mode || "voicemail";
    $("setting-email").value = settings.email || "";
    $("setting-language").value = settings.language || "";
    ownGreeting = settings.greeting_type || GREETING_TYPE;
    const types = (box.greetings || []).map((g) => (typeof g === "string" ? g : g.type));
    const has = types.includes(ownGreeting);
    $("greeting-state").textContent = has
      ? "Callers hear your own greeting."
      : "Callers hear the standard greeting.";
    $("greeting-play").disabled = !has;
    $("greeting-delete").disabled = !has;
  } catch (error) {
    failed(error, "Loading the mailbox");
  }
}

function greetingType() {
  return ownGreeting;
}

async function playGreeting() {
  try {
    const element = play("greeting-player", await session.greeting(greetingType()));
    element.hidden = false;
    await element.play().catch(() => say("Press play on the player to listen."));
  } catch (error) {
    failed(error, "Playing the greeting");
  }
}

async function deleteGreeting() {
  if (!window.confirm("Delete your greeting? Callers will hear the standard one.")) return;
  try {
    await session.deleteGreeting(greetingType());
    $("greeting-player").hidden = true;
    say("Greeting deleted.");
    await loadMailbox();
  } catch (error) {
    failed(error, "Deleting the greeting");
  }
}

function offer(blob, type) {
  pending = { blob, type };
  play("greeting-preview", blob);
  $("greeting-new").hidden = false;
}

async function toggleRecording() {
  const control = $("record");
  if (recorder) {
    const blob = await recorder.stop();
    recorder = null;
    control.textContent = "Record";
    control.setAttribute("aria-pressed", "false");
    offer(blob, "audio/wav");
    say("Recording done: listen to it, then save it.");
    return;
  }
  if (!navigator.mediaDevices || !window.AudioContext) {
    say("This browser cannot record here (a microphone needs HTTPS or localhost).", "error");
    return;
  }
  const started = new Recorder(RECORD_SECONDS, (seconds) => {
    $("record-time").textContent = duration(seconds);
  });
  try {
    await started.start();
  } catch (error) {
    say(`The microphone is not available: ${error.message}`, "error");
    return;
  }
  recorder = started;
  control.textContent = "Stop recording";
  control.setAttribute("aria-pressed", "true");
  say("Recording… speak your greeting.");
  // The limit stops the recorder by itself: offer what it recorded.
  started.done.then((blob) => {
    if (recorder === started) {
      recorder = null;
      control.textContent = "Record";
      control.setAttribute("aria-pressed", "false");
      offer(blob, "audio/wav");
      say("Recording limit reached: listen to it, then save it.");
    }
  });
}

function chooseFile() {
  const [file] = $("greeting-file").files;
  if (file) offer(file, file.type || guessType(file.name));
}

function guessType(filename) {
  const ext = filename.toLowerCase().split(".").pop();
  return { wav: "audio/wav", mp3: "audio/mpeg", ogg: "audio/ogg", opus: "audio/ogg" }[ext];
}

async function saveGreeting() {
  if (!pending) return;
  $("greeting-save").disabled = true;
  say("Saving the greeting…");
  try {
    await session.putGreeting(greetingType(), pending.blob, pending.type);
    discardGreeting();
    say("Greeting saved.");
    await loadMailbox();
  } catch (error) {
    failed(error, "Saving the greeting");
  } finally {
    $("greeting-save").disabled = false;
  }
}

function discardGreeting() {
  pending = null;
  $("greeting-new").hidden = true;
  $("greeting-file").value = "";
  $("greeting-preview").removeAttribute("src");
}

async function saveSettings(event) {
  event.preventDefault();
  const changes = {
    mode: $("setting-mode").value,
    email: $("setting-email").value.trim(),
    language: $("setting-language").value.trim(),
  };
  try {
    await session.updateSettings(changes);
    say("Settings saved.");
    await loadMailbox();
  } catch (error) {
    failed(error, "Saving the settings");
  }
}

async function setPin(event) {
  event.preventDefault();
  const pin = $("pin").value;
  if (!/^[0-9]{4,16}$/.test(pin)) {
    say("A PIN has 4 to 16 digits.", "error");
    $("pin").focus();
    return;
  }
  try {
    await session.setPin(pin);
    $("pin").value = "";
    say("PIN changed.");
  } catch (error) {
    failed(error, "Changing the PIN");
  }
}

async function clearPin() {
  if (!window.confirm("Remove the PIN? Anyone calling from your phone reaches your mailbox.")) {
    return;
  }
  try {
    await session.clearPin();
    say("PIN removed.");
  } catch (error) {
    failed(error, "Removing the PIN");
  }
}

// ----- wiring -----

function wire() {
  $("record-limit").textContent = String(RECORD_SECONDS);
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", refresh);
  $("messages").addEventListener("click", onMessageAction);
  $("player").addEventListener("error", playerFailed);
  $("greeting-play").addEventListener("click", playGreeting);
  $("greeting-delete").addEventListener("click", deleteGreeting);
  $("record").addEventListener("click", toggleRecording);
  $("greeting-file").addEventListener("change", chooseFile);
  $("greeting-save").addEventListener("click", saveGreeting);
  $("greeting-discard").addEventListener("click", discardGreeting);
  $("settings-form").addEventListener("submit", saveSettings);
  $("pin-form").addEventListener("submit", setPin);
  $("pin-clear").addEventListener("click", clearPin);
  document.addEventListener("visibilitychange", () => {
    if (session && !document.hidden) refresh();
  });
  const saved = Session.load();
  if (saved) enter(saved);
  else $("login-user").focus();
}

wire();
