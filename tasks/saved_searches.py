"""Tasks: saved searches."""
