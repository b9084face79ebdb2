"""PACS failures, each one line, each with the exit code ``radview pacs`` gives it (0 done, 2 usage,
3 nothing found, 4 the node refused or could not be reached, 1 anything else)."""

from __future__ import annotations

from viewer.base.errors import RadviewError

EXIT_NOTHING, EXIT_UNREACHABLE = 3, 4


class PacsError(RadviewError):
    """A PACS operation failed; ``str(e)`` is the reason, ``exit_code`` the command line's code."""

    exit_code = 1


class NodeUnreachable(PacsError):
    """No connection (nothing listens there, or it timed out)."""

    exit_code = EXIT_UNREACHABLE


class NodeRefused(PacsError):
    """The node answered but would not talk to us: the association was rejected or aborted."""

    exit_code = EXIT_UNREACHABLE


class NothingFound(PacsError):
    """The query matched nothing."""

    exit_code = EXIT_NOTHING


class BadNode(PacsError, ValueError):
    """A node that cannot be parsed or is not in the settings (a usage error)."""

    exit_code = 2
