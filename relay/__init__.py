"""The Hearth websocket relay (Falcon ASGI): ``uvicorn relay.app:app`` serves ``/v1/realtime``.

A second application beside the HTTP API, sharing its tokens (``services.tokens``)
and session cache (``models.session_cache``), never its code.
"""
