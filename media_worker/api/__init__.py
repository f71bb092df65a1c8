"""``voicemail api``: the HTTP API and web page over the workers' message store.

Modules: ``config`` (the ``api:`` section), ``auth`` (credentials, tokens, lockout),
``accounts`` (Kamailio's subscriber and usr_preferences), ``ranges`` (HTTP Range),
``audio`` (formats), ``access`` (who may reach which mailbox), ``routes_*`` (resources),
``app`` (the ASGI factory) and ``cli`` (the command). Importing this package loads none
of them, so the worker's configuration can use ``config`` without the web stack.
"""
