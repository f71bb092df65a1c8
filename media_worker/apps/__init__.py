"""The applications: voicemail, voicebox and annrecorder, selected per call by P-App-Name."""
