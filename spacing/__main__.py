"""``python -m spacing run|plan|submit|status ...``: the ``spacing`` command without its script installed."""

import sys

from spacing.cli import main

sys.exit(main())
