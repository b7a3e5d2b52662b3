"""``python -m core.cli``: the ``inspector`` command."""

import sys

from core.cli.main import main

sys.exit(main())
