"""``voicemail api``: the HTTP API and web page over the workers' message store.

Modules: ``config`` (the ``api:`` section), ``auth`` (credentials, tokens, lockout),
``accounts`` (Kamailio's subscriber and usr_preferences), ``ranges`` (HTTP Range),
``access`` (who may reach which mailbox), ``routes_*`` (resources), ``app`` (the ASGI
factory) and ``cli`` (the command); audio conversion is ``media_worker.transcode``.
Importing this package loads none of them, so the worker's configuration can use
``config`` without the web stack.
"""
