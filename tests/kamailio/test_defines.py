"""Both engines read the same VM_* settings with the same defaults: every setting
native/voicemail.cfg defaults is read by the KEMI script too (kemi/settings.py), with the
default kemi/settings.py gives it, so a site's #!define changes both engines alike.
Static: reads the cfg text, starts nothing."""

from __future__ import annotations

import re
from dataclasses import fields

from kemi.settings import _DEFINES, DEFAULT_VOICEMAIL_STATUSES, Settings
from tests.kamailio.native import VOICEMAIL_CFG

_DEFAULT = re.compile(r"^#!ifndef (VM_\w+)\n#!define \1 (.+)$", re.M)
# The fragment's flags are kemi/names.py's constants (test_cfg.py compares them).
_FLAGS = re.compile(r"VM_FLT_\w+")


def fragment_defaults() -> dict[str, str]:
    """The VM_* settings native/voicemail.cfg defaults, as their cfg text."""
    return {
        name: value.strip()
        for name, value in _DEFAULT.findall(VOICEMAIL_CFG.read_text())
        if not _FLAGS.fullmatch(name)
    }


def kemi_defaults() -> dict[str, str]:
    """kemi/settings.py's defaults, written as a cfg #!define would hold them."""
    defaults = {f.name: f.default for f in fields(Settings)}
    cfg: dict[str, str] = {}
    for define, name in _DEFINES.items():
        value = defaults[name]
        if value is None:
            continue  # unset by default (VM_SECRET)
        if isinstance(value, tuple):
            cfg[define] = '"' + ",".join(str(v) for v in value) + '"'
        elif isinstance(value, str):
            cfg[define] = f'"{value}"'
        else:
            cfg[define] = str(value)
    return cfg


def test_the_fragment_defaults_are_found() -> None:
    defaults = fragment_defaults()
    assert defaults["VM_WORKER_ANSWER_MS"] == "60000"
    assert defaults["VM_ON_STATUS"] == '"404,408,480,486"'
    assert (
        kemi_defaults()["VM_ON_STATUS"]
        == '"' + ",".join(map(str, DEFAULT_VOICEMAIL_STATUSES)) + '"'
    )


def test_every_setting_of_the_fragment_is_read_by_the_kemi_script() -> None:
    """A site that sets one of them changes both engines, not only the native one."""
    missing = sorted(set(fragment_defaults()) - set(_DEFINES))
    assert missing == []


def test_the_fragment_and_the_kemi_script_default_alike() -> None:
    kemi = kemi_defaults()
    different = {
        name: (value, kemi[name])
        for name, value in fragment_defaults().items()
        if kemi[name] != value
    }
    assert different == {}


def test_what_the_fragment_reads_is_a_setting_a_flag_or_its_own() -> None:
    """Every VM_* name the fragment uses outside its header is a setting both engines
    read, a flag, one it defines itself, or the switches VM_RTPENGINE (the KEMI script:
    WITH_RTPENGINE) and VM_SECRET (read by kemi/settings.py, unset by default)."""
    text = VOICEMAIL_CFG.read_text()
    body = text.split("\n#!ifndef", 1)[1]
    own = set(re.findall(r"^#!define (VM_\w+) ", text, re.M))
    used = set(re.findall(r"\bVM_[A-Z0-9_]*[A-Z0-9]\b", body))
    unread = sorted(
        name
        for name in used - set(_DEFINES) - own
        if not _FLAGS.fullmatch(name) and name != "VM_RTPENGINE"
    )
    assert unread == []
