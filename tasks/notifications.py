"""Tasks: notifications."""
