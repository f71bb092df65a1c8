"""Email for voicemail: SEMS templates, MIME messages and the durable outbox."""
