"""The notifier's part of the configuration file: people and escalation chains.

    notifier:
      people:
        oncall: {name: On-call engineer, email: oncall@example.com, phone: "+86…"}
      escalations:
        standard:
          - on: warning            # every warning stage; "warning:90" or
                                   # "warning:900s-before" for one; "breach"
            notify:
              - {to: assignee, via: email}
          - on: breach
            notify:
              - {to: oncall, via: sms}

Read once at start-up and passed in (``load_config``). Every error names the
dotted path of the offending value, e.g. ``notifier.escalations.standard.1.notify.0.to``.
The other top-level sections of the file belong to the SLA engine and are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slawatch_common.events import Channel, Identifier, Person
from slawatch_common.runtime import ConfigError, describe_errors, read_yaml

ASSIGNEE = "assignee"
"""The ``to:`` value that means the ticket's assignee at the time of the event."""

SECTION = "notifier"

_STAGE_PATTERN = r"^(warning|warning:([1-9][0-9]?|100)|warning:[0-9]+s-before|breach)$"
_ADDRESS_FIELD = {Channel.EMAIL: "email", Channel.SMS: "phone"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Model):
    """One recipient of a rule: a person id from ``people`` or ``assignee``."""

    to: Identifier
    via: Channel


class Rule(_Model):
    """At stage ``on``, tell every target."""

    on: Annotated[str, Field(pattern=_STAGE_PATTERN)]
    notify: Annotated[tuple[Target, ...], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    def applies_to(self, stage: str) -> bool:
        """``warning`` matches every ``warning:<pct>`` stage; anything else must be equal."""
        if self.on == "warning":
            return stage.startswith("warning:")
        return self.on == stage


class NotifierConfig(_Model):
    """People by id and escalation chains by name; validated, immutable."""

    people: dict[Identifier, Person] = Field(default_factory=dict)
    escalations: dict[Identifier, tuple[Rule, ...]] = Field(default_factory=dict)

    @field_validator("people", mode="before")
    @classmethod
    def _ids_from_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            key: {"id": key, **entry} if isinstance(entry, dict) else entry
            for key, entry in value.items()
        }


def address_of(person: Person, channel: Channel) -> str | None:
    """The address ``channel`` needs to reach ``person`` (email or phone), if known."""
    return person.email if channel is Channel.EMAIL else person.phone


def load_config(path: Path) -> NotifierConfig:
    """The validated ``notifier:`` section of the YAML file at ``path``, or ``ConfigError``."""
    document = read_yaml(path)
    return parse_config(document.get(SECTION), source=str(path))


def parse_config(section: Any, *, source: str = "<config>") -> NotifierConfig:
    """Validate the ``notifier:`` mapping; ``ConfigError`` lists every problem by path."""
    if section is None:
        raise ConfigError(f"{source}: {SECTION}: missing (needs people and escalations)")
    try:
        config = NotifierConfig.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(f"{source}:\n{describe_errors(exc, SECTION)}") from exc
    problems = reference_errors(config)
    if problems:
        raise ConfigError(f"{source}:\n" + "\n".join(problems))
    return config


def reference_errors(config: NotifierConfig) -> list[str]:
    """Targets naming unknown people or people without the channel's address."""
    problems: list[str] = []
    if ASSIGNEE in config.people:
        problems.append(f"{SECTION}.people.{ASSIGNEE}: reserved for the ticket's assignee")
    problems += [
        f"{SECTION}.people.{key}.id: must equal its key {key!r}"
        for key, person in config.people.items()
        if person.id != key
    ]
    for chain, rules in config.escalations.items():
        for index, rule in enumerate(rules):
            for position, target in enumerate(rule.notify):
                path = f"{SECTION}.escalations.{chain}.{index}.notify.{position}"
                problems += _target_errors(config.people, target, path)
    return problems


def _target_errors(people: dict[str, Person], target: Target, path: str) -> list[str]:
    if target.to == ASSIGNEE:
        return []
    person = people.get(target.to)
    if person is None:
        known = ", ".join(sorted(people)) or "none"
        return [f"{path}.to: unknown person {target.to!r} (known: {known}, {ASSIGNEE})"]
    if address_of(person, target.via) is None:
        field = _ADDRESS_FIELD[target.via]
        return [f"{path}.via: {target.to!r} has no {field}, which {target.via} needs"]
    return []
