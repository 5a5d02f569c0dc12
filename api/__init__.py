"""The Hearth HTTP API (Falcon WSGI)."""
