"""Notebook UI: the transcript and status views, the microphone widget, the credentials form."""
