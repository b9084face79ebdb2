"""Entry script of the PyInstaller bundle: the ``radview`` console script, frozen.

``multiprocessing.freeze_support()`` must run first: a child started with the "spawn" method (the
inference process) re-executes this very binary with ``--multiprocessing-fork`` arguments, and
``freeze_support`` turns that invocation into the child instead of a second GUI.

``radview --bundle-self-check ...`` is the smoke test's hook into the frozen interpreter
(``packaging/radview_selfcheck.py``); it is not a user command.
"""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["--bundle-self-check"]:
        from radview_selfcheck import main as self_check

        sys.exit(self_check(sys.argv[2:]))
    from viewer.cli import main

    sys.exit(main())
