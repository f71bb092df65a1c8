"""Validation of identity values (domain, user, greeting type, message name).

Identity values are opaque keys, never paths. Every backend calls these checks before it
touches its medium, so a hostile value is refused the same way everywhere.
"""

from __future__ import annotations

import unicodedata

from storage.errors import BadIdentity

# The fs backend keeps greetings of <domain> under <domain>-prompts (SEMS layout), so a
# mailbox domain with that suffix would alias another domain's greetings.
PROMPTS_SUFFIX = "-prompts"
# Longest file name component Linux file systems accept, in bytes.
MAX_BYTES = 255


def check_identity(kind: str, value: object) -> str:
    """Return ``value`` if it is a safe identity value of ``kind``, else raise BadIdentity."""
    if not isinstance(value, str):
        raise BadIdentity(kind, value, "must be a string")
    if not value:
        raise BadIdentity(kind, value, "must not be empty")
    if value in (".", ".."):
        raise BadIdentity(kind, value, "must not be '.' or '..'")
    for char in value:
        if char in "/\\":
            raise BadIdentity(kind, value, "must not contain '/' or '\\'")
        if char == "\0":
            raise BadIdentity(kind, value, "must not contain NUL")
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise BadIdentity(kind, value, f"must not contain control character {char!r}")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise BadIdentity(kind, value, f"must not be longer than {MAX_BYTES} bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadIdentity(kind, value, "must be valid Unicode text") from None
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
