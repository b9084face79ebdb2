"""Run a command in a private network namespace that has only loopback: ``python -m tests.private_network
-- CMD ...`` (``make test`` and ``make bench`` run pytest so).

Orthanc 1.10.1, the PACS the tests start, cannot be told which address to listen on: it binds every
interface. Inside a namespace of its own with nothing but ``lo``, it and the tests' client side (this
process's children) can reach each other and nothing else can reach them. As root the namespace is made
with ``unshare -n``, otherwise with ``unshare -rn`` (a user namespace too); ``lo`` is brought up in it.
Where neither works (no ``unshare``, user namespaces disabled) the command runs as it is, with a warning,
and the PACS tests skip with that reason unless ``RADVIEW_REQUIRE_PACS`` is set (CI sets it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

#: Set in the namespace, for the tests to know they are in one.
MARKER = "RADVIEW_PRIVATE_NETWORK"


def private() -> bool:
    """True when this process's network namespace has no interface but loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m tests.private_network -- CMD [ARG...]", file=sys.stderr)
        return 2
    if private():
        os.execvp(argv[0], argv)
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is not None and os.path.exists(ip):
        flags = "-n" if os.geteuid() == 0 else "-rn"
        probe = subprocess.run([unshare, flags, ip, "link", "set", "lo", "up"], capture_output=True, text=True)
        if probe.returncode == 0:
            script = f'"{ip}" link set lo up && exec "$@"'
            env = dict(os.environ, **{MARKER: "1"})
            return subprocess.call([unshare, flags, "--", "sh", "-c", script, "sh", *argv], env=env)
        reason = probe.stderr.strip() or f"exit {probe.returncode}"
    else:
        reason = "unshare or ip is missing"
    print(f"private_network: no private network namespace ({reason}); running without one, the PACS tests "
          "will skip", file=sys.stderr)
    os.execvp(argv[0], argv)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
