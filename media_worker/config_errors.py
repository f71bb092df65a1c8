"""The error every configuration check raises, in a module of its own so that the
checks of each section (``media_worker.api.config``, ...) can raise it without importing
the loader that imports them."""


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message starts with its key."""
