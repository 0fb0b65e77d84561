"""``python -m sseload`` is ``sseload``."""

import sys

from sseload.cli import main

sys.exit(main())
