"""``slawatch-ingest``: serve the ingest app with uvicorn.

Configuration comes from ``SLAWATCH_*`` environment variables (see
``settings.IngestSettings``), the webhook sources from the ``ingest:`` section
of the configuration file (``webhook_config``); invalid settings or
configuration end the process before it listens. SIGTERM or SIGINT makes
uvicorn finish the requests in progress and run the lifespan's shutdown,
which closes the Kafka producer.
"""

from __future__ import annotations

import gc
import os
import sys

import uvicorn
from pydantic import ValidationError

from slawatch_common.runtime import ConfigError, configure_logging, describe_errors, serve
from slawatch_common.settings import DevelopmentValuesError
from slawatch_ingest.app import create_app
from slawatch_ingest.settings import IngestSettings
from slawatch_ingest.webhook_config import load_sources


def main() -> None:
    """Run the service until signalled; exits non-zero on invalid settings or configuration."""
    try:
        settings = IngestSettings()
        settings.refuse_development_values()
    except ValidationError as exc:
        sys.exit(f"slawatch-ingest: invalid settings:\n{describe_errors(exc)}")
    except DevelopmentValuesError as exc:
        sys.exit(f"slawatch-ingest: {exc}")
    try:
        sources = load_sources(settings.config_file, os.environ)
    except ConfigError as exc:
        sys.exit(f"slawatch-ingest: invalid configuration: {exc}")
    configure_logging(settings.log_level)
    app = create_app(settings, sources)
    # Everything built so far (modules, models, the app) lives as long as the
    # process: keep it out of the collector's way. Otherwise every full
    # collection walks it again, a pause of tens of milliseconds that
    # requests in flight wait out (seen as the p99 latency under load).
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # keep the logging configured above
        access_log=False,  # a line per event costs more than the event; /metrics counts them
    )
    if not serve(config):
        sys.exit(3)


if __name__ == "__main__":
    main()
