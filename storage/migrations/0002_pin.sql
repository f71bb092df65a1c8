-- Voicemail message store, schema version 2: a mailbox's own PIN and its failures.

CREATE TABLE vm_pin (
    mailbox_id   bigint PRIMARY KEY REFERENCES vm_mailbox (id) ON DELETE CASCADE,
    hash         text,                      -- scrypt$N$r$p$salt$hash; NULL: no PIN
    failures     double precision[] NOT NULL DEFAULT '{}',  -- unix times
    locked_until double precision NOT NULL DEFAULT 0
);
