"""``python -m gwcore``: same as the ``gwcore`` command."""

import sys

from gwcore.cli import main

sys.exit(main())
