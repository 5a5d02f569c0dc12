"""The Hearth HTTP API (Falcon WSGI) and the websocket relay (Falcon ASGI)."""
