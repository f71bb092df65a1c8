-- Voicemail message store, schema version 3: a mailbox listing straight from one index.
--
-- The index holds every column a listing shows, in the listing's order, so listing a
-- mailbox is an index scan without a sort (and, once vacuumed, without heap visits);
-- counting reads the same index. It replaces vm_message_flags, which it covers.
CREATE INDEX vm_message_listing ON vm_message (mailbox_id, received_at, name)
    INCLUDE (is_read, size, sender, duration_ms);
DROP INDEX vm_message_flags;
