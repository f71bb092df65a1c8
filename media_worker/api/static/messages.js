// The message list: new first, then newest first; play, download, mark read or new,
// delete; polled so that a new message shows without a reload.

import { $, current, duration, failed, play, say } from "./ui.js";

const POLL_SECONDS = 5; // a new message shows within this long, without a reload
const PAGE = 100; // rows drawn at first and per "Show more": a phone stays responsive

let timer = null;
let shown = ""; // the last list drawn, to redraw only on a change
let listFailed = false; // the last poll failed: its error is on the status line
let limit = PAGE; // rows drawn
let last = []; // the last list the server gave

export function startPolling() {
  shown = "";
  limit = PAGE;
  schedule();
}

export function stopPolling() {
  clearTimeout(timer);
  shown = "";
  last = [];
  $("messages").replaceChildren();
  $("more").hidden = true;
  stopPlayer();
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (current.session && !document.hidden) await refresh();
    if (current.session) schedule();
  }, POLL_SECONDS * 1000);
}

export async function refresh() {
  const session = current.session;
  if (!session) return;
  try {
    const { messages } = await session.messages();
    if (session !== current.session) return; // signed out meanwhile
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

// What the list shows: new first, then newest first, the first ``limit`` of them.
export function arrange(messages, limit) {
  const sorted = [...messages].sort(sortKey);
  const rows = sorted.slice(0, limit);
  return { rows, fresh: sorted.filter((m) => m.new).length, total: sorted.length };
}

function draw(messages) {
  last = messages;
  const { rows, fresh, total } = arrange(messages, limit);
  $("counts").textContent = `${fresh} new, ${total - fresh} saved`;
  $("empty").hidden = total > 0;
  const rest = total - rows.length;
  $("more").hidden = rest === 0;
  $("more").textContent = `Show ${Math.min(PAGE, rest)} more (${rest} not shown)`;
  const key = JSON.stringify(rows.map((m) => [m.name, m.new]));
  if (key === shown) return;
  const had = shown;
  shown = key;
  $("messages").replaceChildren(...rows.map(row));
  if (had && rows.some((m) => m.new && !had.includes(JSON.stringify(m.name)))) {
    say("A new message arrived.");
  }
}

function showMore() {
  limit += PAGE;
  draw(last);
  if ($("more").hidden) $("inbox-title").focus();
}

export function caller(sender) {
  // "Alice" <sip:alice@example.com> -> Alice; a quoted name may hold < and escaped quotes.
  const text = sender || "";
  const quoted = /^\s*"((?:[^"\\]|\\.)*)"\s*<([^>]*)>/.exec(text);
  if (quoted) return { name: quoted[1].replace(/\\(.)/g, "$1") || quoted[2], uri: quoted[2] };
  const plain = /^\s*([^<]*?)\s*<([^>]*)>/.exec(text);
  if (plain) return { name: plain[1] || plain[2], uri: plain[2] };
  return { name: text || "Unknown caller", uri: "" };
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

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
  const session = current.session;
  if (!target || !session) return;
  const item = target.closest("li.message");
  const name = item.dataset.name;
  const label = item.querySelector(".from").textContent;
  target.disabled = true;
  try {
    switch (target.dataset.action) {
      case "play":
        await playMessage(name, label, item.dataset.new === "true");
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
  const { blob, format } = await current.session.audio(name);
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
    await current.session.setNew(name, false);
    await refresh();
    refocus(name, "play");
  }
}

// A browser without an MP3 decoder gets the WAV instead.
async function playerFailed() {
  const player = $("player");
  const name = player.dataset.name;
  if (!name || !current.session) return;
  if (player.dataset.format !== "mp3") {
    say("This message cannot be played here.", "error");
    return;
  }
  try {
    const { blob, format } = await current.session.audio(name, ["wav"]);
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
  const { blob, filename } = await current.session.audio(name);
  const link = document.createElement("a");
  const url = URL.createObjectURL(blob);
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function wireMessages() {
  $("refresh").addEventListener("click", refresh);
  $("more").addEventListener("click", showMore);
  $("messages").addEventListener("click", onMessageAction);
  $("player").addEventListener("error", playerFailed);
  document.addEventListener("visibilitychange", () => {
    if (current.session && !document.hidden) refresh();
  });
}
