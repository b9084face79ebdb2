"""``python -m viewer`` is the ``radview`` command."""

import sys

from .cli import main

sys.exit(main())
