"""``python -m viewer`` is the ``radview`` command."""

import multiprocessing
import sys

if __name__ == "__main__":
    # First: in a frozen build, a child process started with "spawn" (the AI's model service) re-runs
    # this executable, and freeze_support runs the child's job instead of the viewer (no-op otherwise).
    multiprocessing.freeze_support()
    from viewer.cli import main

    sys.exit(main())
