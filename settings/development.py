"""The development ``SECRET_KEY``, made once per ``var/`` and shared by every process that uses it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets

from settings.validation import MIN_SECRET_LENGTH, SettingsError


def development_secret_key(var_dir: pathlib.Path) -> str:
    """The development ``SECRET_KEY``: random, made on first use in ``<var_dir>/secret_key`` (mode 0600).

    Every process and ``hearth`` command with the same ``HEARTH_VAR_DIR`` reads
    the same key, and it survives restarts (emailed links keep working).
    """
    path = pathlib.Path(var_dir) / "secret_key"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret_key.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # the first process to get here wins; the others read its key
            os.unlink(tmp)
        key = path.read_text().strip()
    except OSError as exc:
        raise SettingsError(
            [
                f"SECRET_KEY is unset and the development key {path} cannot be made or read "
                f"({exc.strerror}); set SECRET_KEY or HEARTH_VAR_DIR"
            ]
        ) from None
    if len(key) < MIN_SECRET_LENGTH:
        raise SettingsError([f"{path} holds no usable key; delete it to have a new one made"])
    return key
