"""``python -m bench.scale``: one run, its figures printed as JSON."""

import json
import sys

from bench.scale import bench_engine_scale


def main() -> int:
    print(json.dumps(bench_engine_scale(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
