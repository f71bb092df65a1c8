"""A small sans-IO SIP core (RFC 3261): messages, transactions and dialogs.

Nothing here reads a socket or a clock: bytes and events go in, bytes and actions come out,
and time is an argument. The asyncio worker drives it.
"""
