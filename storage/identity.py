"""Validation of identity values (domain, user, greeting type, message name).

Identity values are opaque keys, never paths. Every backend calls these checks before it
touches its medium, so a hostile value is refused the same way everywhere.
"""

from __future__ import annotations

import re

from storage.errors import BadIdentity

# The fs backend keeps greetings of <domain> under <domain>-prompts (SEMS layout), so a
# mailbox domain with that suffix would alias another domain's greetings.
PROMPTS_SUFFIX = "-prompts"
# Longest file name component Linux file systems accept, in bytes.
MAX_BYTES = 255
# Path separators and Unicode control characters (category Cc, plus the line and paragraph
# separators); one regex keeps the check cheap enough to run on every listed file name.
FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\u2028\u2029]")


def check_identity(kind: str, value: object) -> str:
    """Return ``value`` if it is a safe identity value of ``kind``, else raise BadIdentity."""
    if not isinstance(value, str):
        raise BadIdentity(kind, value, "must be a string")
    if not value:
        raise BadIdentity(kind, value, "must not be empty")
    if value in (".", ".."):
        raise BadIdentity(kind, value, "must not be '.' or '..'")
    bad = FORBIDDEN_CHARS.search(value)
    if bad is not None:
        char = bad.group()
        if char in "/\\":
            raise BadIdentity(kind, value, "must not contain '/' or '\\'")
        if char == "\0":
            raise BadIdentity(kind, value, "must not contain NUL")
        raise BadIdentity(kind, value, f"must not contain control character {char!r}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadIdentity(kind, value, "must be valid Unicode text") from None
    if size > MAX_BYTES:
        raise BadIdentity(kind, value, f"must not be longer than {MAX_BYTES} bytes")
    return value


def check_mailbox(domain: object, user: object) -> tuple[str, str]:
    """Validate a mailbox identity (domain, user)."""
    domain = check_identity("domain", domain)
    if domain.endswith(PROMPTS_SUFFIX):
        raise BadIdentity("domain", domain, f"must not end in {PROMPTS_SUFFIX!r} (reserved)")
    return domain, check_identity("user", user)


def check_message_name(name: object) -> str:
    """Validate a message name; names never start with '.' (those are temporary files)."""
    name = check_identity("message name", name)
    if name.startswith("."):
        raise BadIdentity("message name", name, "must not start with '.'")
    return name


def check_greeting_type(typ: object) -> str:
    """Validate a greeting type (SEMS ``typ``)."""
    typ = check_identity("greeting type", typ)
    if typ.startswith("."):
        raise BadIdentity("greeting type", typ, "must not start with '.'")
    return typ
