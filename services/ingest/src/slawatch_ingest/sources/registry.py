"""Every kind of source: its normaliser, how it signs, and its default configuration.

A normaliser is ``normalise(body, headers, config) -> Normalised``: pure (no
I/O, no clock), deterministic, header names in lower case. See
``canonical`` for what it returns and ``docs/SOURCES.md`` for what each
kind's changes mean.

A delivery is bounded by its source's body size cap, not by how many events
it makes (an Alertmanager or Grafana group may carry thousands of alerts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from slawatch_ingest.signatures import Scheme
from slawatch_ingest.sources import (
    alertmanager,
    generic,
    glpi,
    grafana,
    jira,
    servicenow,
    zammad,
    zendesk,
)
from slawatch_ingest.sources.canonical import Normalised
from slawatch_ingest.sources.config import Kind, SourceConfig

Normaliser = Callable[[Mapping[str, Any], Mapping[str, str], SourceConfig], Normalised]


@dataclass(frozen=True, slots=True)
class SourceKind:
    normalise: Normaliser
    scheme: Scheme
    defaults: Mapping[str, Any]


KINDS: Mapping[Kind, SourceKind] = MappingProxyType(
    {
        "jira": SourceKind(jira.normalise, Scheme.HUB_SHA256, jira.DEFAULTS),
        "zendesk": SourceKind(zendesk.normalise, Scheme.ZENDESK, zendesk.DEFAULTS),
        "zammad": SourceKind(zammad.normalise, Scheme.HUB_SHA1, zammad.DEFAULTS),
        "servicenow": SourceKind(servicenow.normalise, Scheme.HMAC, servicenow.DEFAULTS),
        "glpi": SourceKind(glpi.normalise, Scheme.GLPI, glpi.DEFAULTS),
        "alertmanager": SourceKind(alertmanager.normalise, Scheme.NONE, alertmanager.DEFAULTS),
        "grafana": SourceKind(grafana.normalise, Scheme.HMAC, grafana.DEFAULTS),
        "generic": SourceKind(generic.normalise, Scheme.HMAC, generic.DEFAULTS),
    }
)
