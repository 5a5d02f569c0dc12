"""Service URLs as ``hearth`` prints them: any password replaced by ``***``.

Shared by the command (``ops/cli.py``) and ``hearth run``'s supervisor
(``ops/supervisor.py``), which the command starts.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
