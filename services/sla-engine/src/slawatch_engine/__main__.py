"""``python -m slawatch_engine``: the same as the ``slawatch-engine`` command."""

import sys

from slawatch_engine.main import main

sys.exit(main())
