"""The media worker: SIP application server for the voicemail, voicebox and annrecorder apps."""

__version__ = "0.1.0"
