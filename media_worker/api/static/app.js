// Visual voicemail: signing in and out, and the page's parts wired together
// (messages.js, greeting.js, settings.js; ui.js holds what they share).

import { ApiError, Session, parseAddress } from "./api.js";
import { resetGreeting, showGreeting, wireGreeting } from "./greeting.js";
import { refresh, startPolling, stopPolling, wireMessages } from "./messages.js";
import { showSettings, wireSettings } from "./settings.js";
import { $, current, failed, releaseAudio, say } from "./ui.js";

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
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      say("Wrong SIP address or password.", "error");
    } else {
      failed(error, "Signing in");
    }
    return;
  } finally {
    $("login-submit").disabled = false;
  }
  $("login-password").value = "";
  candidate.save();
  await enter(candidate);
}

async function enter(session) {
  current.session = session;
  $("who-name").textContent = session.address;
  $("pin-user").value = session.address;
  $("who").hidden = false;
  $("login").hidden = true;
  $("app").hidden = false;
  say("");
  startPolling();
  await Promise.all([refresh(), loadMailbox()]);
  if (current.session === session) $("inbox-title").focus();
}

function signOut(message = "Signed out.") {
  Session.forget();
  current.session = null;
  stopPolling();
  resetGreeting();
  releaseAudio();
  $("app").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  say(message);
  $("login-user").focus();
}

async function loadMailbox() {
  const session = current.session;
  if (!session) return;
  try {
    const box = await session.mailbox();
    if (session !== current.session) return; // signed out meanwhile
    showSettings(box);
    showGreeting(box);
  } catch (error) {
    failed(error, "Loading the mailbox");
  }
}

function wire() {
  current.onUnauthorized = signOut;
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut());
  wireMessages();
  wireGreeting(loadMailbox);
  wireSettings(loadMailbox);
  const saved = Session.load();
  if (saved) enter(saved);
  else $("login-user").focus();
}

wire();
