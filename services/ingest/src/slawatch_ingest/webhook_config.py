"""The ``ingest.sources`` section of the configuration file: which webhook sources exist.

    ingest:
      sources:
        jira:                       # POST /v1/webhooks/jira
          secret: …                 # or SLAWATCH_SOURCE_JIRA_SECRET
        snow-prod:                  # a name of your own needs a kind
          kind: servicenow
          tokens: […]               # or SLAWATCH_SOURCE_SNOW_PROD_TOKENS=a,b

Every kind but ``generic`` is available under its own name with its
defaults (see each module in ``sources/``), whether or not the file mentions
it (``enabled: false`` removes one); a source is
refused (401) until it has credentials. An entry's keys replace the
defaults' keys of the same name (a ``priorities`` map given replaces the
built-in one; a ``mapping`` given replaces the keys it names). Secrets come
from the file or from the environment (``SLAWATCH_SOURCE_<NAME>_SECRET``,
``_TOKENS`` comma-separated; the name upper-cased, ``-`` as ``_``), the
environment winning.

Read once at start-up and passed in; ``ConfigError`` names the dotted path of
every invalid value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from slawatch_common.runtime import ConfigError, describe_errors, read_yaml
from slawatch_ingest.sources.config import KINDS as KIND_NAMES
from slawatch_ingest.sources.config import SourceConfig
from slawatch_ingest.sources.registry import KINDS

SECTION = ("ingest", "sources")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def load_sources(path: Path, environ: Mapping[str, str]) -> dict[str, SourceConfig]:
    """The sources of the YAML file at ``path`` (every kind, at least), or ``ConfigError``."""
    document = read_yaml(path)
    ingest = document.get("ingest") or {}
    if not isinstance(ingest, dict):
        raise ConfigError(f"{path}: ingest: must be a mapping")
    return parse_sources(ingest.get("sources"), environ, source=str(path))


def parse_sources(
    section: Any, environ: Mapping[str, str], *, source: str = "<config>"
) -> dict[str, SourceConfig]:
    """Validate ``ingest.sources`` over the defaults; ``ConfigError`` lists every problem."""
    entries = section if section is not None else {}
    if not isinstance(entries, dict):
        raise ConfigError(f"{source}: ingest.sources: must be a mapping of source names")
    # Every kind under its own name, except ``generic``, which means nothing without a mapping.
    built_in = [kind for kind in KIND_NAMES if kind != "generic" or kind in entries]
    names = [*built_in, *(name for name in entries if name not in built_in)]
    sources: dict[str, SourceConfig] = {}
    problems: list[str] = []
    for name in names:
        entry = entries.get(name) or {}
        prefix = f"ingest.sources.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{prefix}: a name is lower-case letters, digits, - and _")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{prefix}: must be a mapping")
            continue
        try:
            sources[name] = SourceConfig.model_validate(_merged(name, entry, environ))
        except ValidationError as exc:
            problems.append(describe_errors(exc, prefix))
        except ValueError as exc:
            problems.append(f"{prefix}: {exc}")
    if problems:
        raise ConfigError(f"{source}:\n" + "\n".join(problems))
    return sources


def default_sources() -> dict[str, SourceConfig]:
    """Every kind under its own name, with its defaults and no credentials."""
    return parse_sources(None, {})


def _merged(name: str, entry: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    kind = entry.get("kind", name)
    if kind not in KINDS:
        known = ", ".join(KIND_NAMES)
        raise ValueError(f"kind: {kind!r} is not a kind of source (known: {known})")
    defaults = dict(KINDS[kind].defaults)
    merged = {**defaults, **entry, "kind": kind, "name": name}
    if isinstance(defaults.get("mapping"), dict) and isinstance(entry.get("mapping"), dict):
        merged["mapping"] = {**defaults["mapping"], **entry["mapping"]}
    variable = f"SLAWATCH_SOURCE_{name.upper().replace('-', '_')}"
    if environ.get(f"{variable}_SECRET"):
        merged["secret"] = environ[f"{variable}_SECRET"]
    if environ.get(f"{variable}_TOKENS"):
        tokens = environ[f"{variable}_TOKENS"].split(",")
        merged["tokens"] = [token.strip() for token in tokens if token.strip()]
    return merged
