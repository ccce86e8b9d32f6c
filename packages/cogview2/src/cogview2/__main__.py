"""``python -m cogview2 …``: the ``cogview2`` command line (e.g. under ``torchrun``)."""

import sys

from .cli import main

sys.exit(main())
