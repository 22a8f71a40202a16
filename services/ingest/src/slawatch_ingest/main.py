"""``slawatch-ingest``: serve the ingest app with uvicorn.

Configuration comes from ``SLAWATCH_*`` environment variables (see
``settings.IngestSettings``); invalid settings end the process before it
listens. SIGTERM or SIGINT makes uvicorn finish the requests in progress and
run the lifespan's shutdown, which closes the Kafka producer.
"""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from slawatch_common.runtime import configure_logging, describe_errors
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings


def main() -> None:
    """Run the service until signalled; exits non-zero on invalid settings."""
    try:
        settings = IngestSettings()
    except ValidationError as exc:
        sys.exit(f"slawatch-ingest: invalid settings:\n{describe_errors(exc)}")
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep the logging configured above
    )


if __name__ == "__main__":
    main()
