"""The development mail outbox as tests read it: one ``.eml`` file per sent message."""

from __future__ import annotations

import email
import pathlib


class Outbox:
    """Reads the ``.eml`` files the outbox mailer wrote into ``directory``."""

    def __init__(self, directory: pathlib.Path):
        self.directory = directory

    def messages(self) -> list[email.message.Message]:
        if not self.directory.exists():
            return []
        # Oldest first: the outbox names files so that their lexical order is the order they were written.
        paths = sorted(self.directory.glob("*.eml"))
        return [email.message_from_bytes(p.read_bytes()) for p in paths]

    def token_for(self, address: str) -> str:
        """The ``token=`` value in the newest message to ``address``."""
        for message in reversed(self.messages()):
            if message["To"] == address:
                body = message.get_body(("plain",)) if hasattr(message, "get_body") else message
                text = (
                    (body.get_payload(decode=True) or b"").decode()
                    if not message.is_multipart()
                    else message.get_payload(0).get_payload(decode=True).decode()
                )
                for line in text.splitlines():
                    if line.startswith("token="):
                        return line.split("=", 1)[1].strip()
        raise AssertionError(f"no message with a token to {address}")
