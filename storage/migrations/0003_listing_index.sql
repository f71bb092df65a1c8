-- Voicemail message store, schema version 3: a mailbox listing in index order.
--
-- The index holds a listing's order and the small columns it shows, so listing a mailbox
-- is an index scan without a sort, and counting reads the index alone (once vacuumed).
-- The sender stays out of it: it comes from the caller's From header, unbounded, and an
-- index entry may not exceed about 2.7 kB. It replaces vm_message_flags, which it covers.
CREATE INDEX vm_message_listing ON vm_message (mailbox_id, received_at, name)
    INCLUDE (is_read, size, duration_ms);
DROP INDEX vm_message_flags;
