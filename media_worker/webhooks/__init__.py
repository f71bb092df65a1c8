"""Webhooks: each mailbox change POSTed, signed, to the configured endpoints.

``events`` builds and signs what is sent; ``outbox`` keeps the deliveries on disk until
each endpoint took them. Import the submodules directly (the configuration imports
``events``, and ``outbox`` imports the configuration).
"""
