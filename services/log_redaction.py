"""Secrets scrubbed from the log records of libraries that write what they send and receive.

At DEBUG, peewee logs every query with its parameters (a deposit's client
secret as it is stored, a provider event's payload), the ``stripe`` library
logs every API response body (a PaymentIntent with its client secret), and
botocore logs the signature of every request it signs, a presigned download
link's included (whoever reads it could fetch the file until it expires). Our own
code never logs a secret; these libraries' records are rewritten before any
handler sees them, whatever level an operator turns on.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# A PaymentIntent's (or SetupIntent's) client secret, Stripe's secret and restricted keys, a webhook
# signing secret, the MAC of a Stripe-Signature header, and an AWS signature (SigV4) as botocore logs it
# or as a presigned URL carries it.
SECRET = re.compile(
    r"\b[A-Za-z0-9]+_[A-Za-z0-9_]*_secret_[A-Za-z0-9]+"
    r"|\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+"
    r"|\bwhsec_[A-Za-z0-9+/=_-]+"
    r"|\bv[01]=[0-9a-fA-F]{64}\b"
    r"|(?<=Signature:\n)[0-9a-fA-F]{64}\b"
    r"|(?<=Signature=)[0-9a-fA-F]{64}\b"
)
# The loggers whose records carry what was sent or received. A filter on a logger sees only the
# records logged on that very logger, so each is named.
LIBRARY_LOGGERS = ("peewee", "stripe", "botocore.auth", "botocore.endpoint", "urllib3.connectionpool")


def redact(text: str) -> str:
    """``text`` with every payment secret and request signature replaced by ``[redacted]``."""
    return SECRET.sub(REDACTED, text)


class SecretRedaction(logging.Filter):
    """Rewrites a record's message without its secrets; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: leave it to the handler
            return True
        scrubbed = redact(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def redact_library_logs() -> None:
    """Install ``SecretRedaction`` on the libraries' loggers, once per process (repeating changes nothing)."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, SecretRedaction) for existing in logger.filters):
            logger.addFilter(SecretRedaction())


__all__ = ["REDACTED", "SecretRedaction", "redact", "redact_library_logs"]
