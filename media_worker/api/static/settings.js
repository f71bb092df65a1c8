// Settings (mode, email, language: Kamailio's usr_preferences) and the voicebox PIN.

import { $, current, failed, say } from "./ui.js";

let reload = async () => {}; // reloads the mailbox after a change (app.js)

export function showSettings(box) {
  const settings = box.settings || {};
  $("setting-mode").value = settings.mode || "voicemail";
  $("setting-email").value = settings.email || "";
  $("setting-language").value = settings.language || "";
}

async function saveSettings(event) {
  event.preventDefault();
  const changes = {
    mode: $("setting-mode").value,
    email: $("setting-email").value.trim(),
    language: $("setting-language").value.trim(),
  };
  say("Saving the settings…");
  try {
    await current.session.updateSettings(changes);
    say("Settings saved.");
    await reload();
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
  say("Changing the PIN…");
  try {
    await current.session.setPin(pin);
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
    await current.session.clearPin();
    say("PIN removed.");
  } catch (error) {
    failed(error, "Removing the PIN");
  }
}

export function wireSettings(reloadMailbox) {
  reload = reloadMailbox;
  $("settings-form").addEventListener("submit", saveSettings);
  $("pin-form").addEventListener("submit", setPin);
  $("pin-clear").addEventListener("click", clearPin);
}
