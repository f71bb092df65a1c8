// The greeting: hear it, delete it, record one with the microphone or upload a file,
// listen to it, then save it.

import { Recorder } from "./recorder.js";
import { $, current, duration, failed, play, say } from "./ui.js";

const GREETING_TYPE = "vm"; // the greeting the voicemail app plays (SEMS typ=vm)
const RECORD_SECONDS = 120;

let recorder = null;
let pending = null; // a recorded or chosen greeting not saved yet: { blob, type }
let ownGreeting = GREETING_TYPE; // the mailbox's greeting_type setting, once loaded
let reload = async () => {}; // reloads the mailbox after a change (app.js)

// The mailbox resource's view of the greeting: which type is the user's, whether it exists.
export function showGreeting(box) {
  const settings = box.settings || {};
  ownGreeting = settings.greeting_type || GREETING_TYPE;
  const types = (box.greetings || []).map((g) => (typeof g === "string" ? g : g.type));
  const has = types.includes(ownGreeting);
  $("greeting-state").textContent = has
    ? "Callers hear your own greeting."
    : "Callers hear the standard greeting.";
  $("greeting-play").disabled = !has;
  $("greeting-delete").disabled = !has;
}

async function playGreeting() {
  try {
    const element = play("greeting-player", await current.session.greeting(ownGreeting));
    element.hidden = false;
    await element.play().catch(() => say("Press play on the player to listen."));
  } catch (error) {
    failed(error, "Playing the greeting");
  }
}

async function deleteGreeting() {
  if (!window.confirm("Delete your greeting? Callers will hear the standard one.")) return;
  try {
    await current.session.deleteGreeting(ownGreeting);
    $("greeting-player").hidden = true;
    say("Greeting deleted.");
    await reload();
  } catch (error) {
    failed(error, "Deleting the greeting");
  }
}

function offer(blob, type) {
  pending = { blob, type };
  play("greeting-preview", blob);
  $("greeting-new").hidden = false;
}

function recording(on) {
  const control = $("record");
  control.textContent = on ? "Stop recording" : "Record";
  control.setAttribute("aria-pressed", String(on));
}

async function toggleRecording() {
  if (recorder) {
    const blob = await recorder.stop();
    recorder = null;
    recording(false);
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
  recording(true);
  say("Recording… speak your greeting.");
  // The limit stops the recorder by itself: offer what it recorded.
  started.done.then((blob) => {
    if (recorder === started) {
      recorder = null;
      recording(false);
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
    await current.session.putGreeting(ownGreeting, pending.blob, pending.type);
    discardGreeting();
    say("Greeting saved.");
    await reload();
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

// Signing out: the microphone is released and an unsaved greeting dropped.
export function resetGreeting() {
  if (recorder) {
    recorder.stop();
    recorder = null;
    recording(false);
  }
  discardGreeting();
  $("greeting-player").hidden = true;
  $("greeting-player").removeAttribute("src");
}

export function wireGreeting(reloadMailbox) {
  reload = reloadMailbox;
  $("record-limit").textContent = String(RECORD_SECONDS);
  $("greeting-play").addEventListener("click", playGreeting);
  $("greeting-delete").addEventListener("click", deleteGreeting);
  $("record").addEventListener("click", toggleRecording);
  $("greeting-file").addEventListener("change", chooseFile);
  $("greeting-save").addEventListener("click", saveGreeting);
  $("greeting-discard").addEventListener("click", discardGreeting);
}
