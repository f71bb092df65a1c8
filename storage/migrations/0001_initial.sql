-- Voicemail message store, schema version 1.
-- Applied by `voicemail storage init URL`; never edit an applied migration, add a new file.

CREATE TABLE vm_mailbox (
    id          bigserial PRIMARY KEY,
    domain      text NOT NULL,
    username    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain, username)
);

CREATE TABLE vm_message (
    mailbox_id  bigint NOT NULL REFERENCES vm_mailbox (id) ON DELETE CASCADE,
    name        text NOT NULL,
    received_at bigint NOT NULL,          -- unix seconds, the call's answer time
    sender      text NOT NULL,
    is_read     boolean NOT NULL DEFAULT false,
    size        integer NOT NULL CHECK (size > 0),
    duration_ms integer,                  -- NULL when the audio is not a readable WAV
    audio       bytea NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, name)
);
-- PCM audio does not compress: store it out of line uncompressed, so that listing and
-- counting scan only the small metadata tuples.
ALTER TABLE vm_message ALTER COLUMN audio SET STORAGE EXTERNAL;
-- Lets count() answer from the index alone.
CREATE INDEX vm_message_flags ON vm_message (mailbox_id) INCLUDE (is_read);

CREATE TABLE vm_greeting (
    mailbox_id  bigint NOT NULL REFERENCES vm_mailbox (id) ON DELETE CASCADE,
    typ         text NOT NULL,
    audio       bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, typ)
);
ALTER TABLE vm_greeting ALTER COLUMN audio SET STORAGE EXTERNAL;
