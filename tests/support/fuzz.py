"""How hard the fuzz tests try: a short run in ``make test``, a long one in ``make fuzz``.

``SLAWATCH_FUZZ=long`` (what ``make fuzz`` sets) selects the long form;
``SLAWATCH_FUZZ_EXAMPLES=<n>`` sets the number outright.
"""

from __future__ import annotations

import os


def examples(short: int, long: int) -> int:
    """The number of examples a fuzz test generates per case, as the environment asks."""
    explicit = os.environ.get("SLAWATCH_FUZZ_EXAMPLES")
    if explicit:
        return int(explicit)
    return long if os.environ.get("SLAWATCH_FUZZ") == "long" else short
