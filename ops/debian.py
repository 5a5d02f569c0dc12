"""Installing a Debian package from the project's own scripts: a fresh machine has only what they install.

``make test`` and ``make run`` need a few system programs (clamd, chromium for the browser tests);
``apt_install`` puts one there the same way for each, or says why it could not.
"""

from __future__ import annotations

import os
import subprocess

APT_TIMEOUT = 1200


class InstallError(Exception):
    """The package could not be installed; the message says why (and, where it helps, what to run)."""


def apt_install(package: str, *, recommends: bool = True, timeout: float = APT_TIMEOUT) -> None:
    """``apt-get update`` then ``apt-get install -y PACKAGE``, as root; raises ``InstallError`` on failure."""
    if os.geteuid() != 0:
        raise InstallError(f"{package} is not installed; run `sudo apt-get install -y {package}`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Wait for another apt run (the other package's, say) instead of failing on its lock.
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    extra = [] if recommends else ["--no-install-recommends"]
    for argv in (["apt-get", *lock, "update", "-qq"], ["apt-get", *lock, "install", "-y", "-qq", *extra, package]):
        try:
            done = subprocess.run(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InstallError(f"{' '.join(argv)} failed: {exc}") from None
        if done.returncode != 0:
            tail = "\n".join(done.stdout.decode(errors="replace").splitlines()[-15:])
            raise InstallError(f"{' '.join(argv)} exited with {done.returncode}:\n{tail}")
