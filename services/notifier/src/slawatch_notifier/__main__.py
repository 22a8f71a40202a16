"""``python -m slawatch_notifier``: the same as the ``slawatch-notifier`` command."""

import sys

from slawatch_notifier.main import main

sys.exit(main())
