"""Write ``schemas/<stem>.schema.json`` from the models in ``slawatch_common.events``.

    python -m slawatch_common.schemagen [SCHEMAS_DIR]      # make schemas

The contract test regenerates the same text and fails when a committed file
differs, so models and schema files cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from slawatch_common.events import CONTRACTS

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_for(stem: str) -> dict[str, Any]:
    body = CONTRACTS[stem].model_json_schema(mode="validation")
    return {"$schema": DIALECT, "$id": f"https://slawatch.dev/schemas/{stem}.schema.json", **body}


def render(stem: str) -> str:
    return json.dumps(schema_for(stem), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else Path("schemas")
    for stem in CONTRACTS:
        (folder / f"{stem}.schema.json").write_text(render(stem), encoding="utf-8")
        print(f"wrote {folder / stem}.schema.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
