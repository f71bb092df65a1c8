"""Provisioning of the Kamailio database (the SerWeb role): ``voicemail db init`` and
``voicemail user``. ``provision`` holds the schema, the URL and the checks without I/O,
``kamdb`` runs them on SQLite or PostgreSQL, ``cli`` is the command."""
