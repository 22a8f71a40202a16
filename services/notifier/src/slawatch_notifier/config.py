"""The notifier's part of the configuration file: people, groups, schedules and chains.

    notifier:
      locale: zh-CN                  # the default language of notifications (zh-CN or en;
                                     # en if not given); a person or group may have their own
      people:
        li.wei: {name: Li Wei, email: li.wei@example.com, phone: "+86…",
                 locale: en, supervisor: wang.fang}
        wang.fang: {name: Wang Fang, email: wang.fang@example.com}
      groups:                        # support lines; robots post once for the whole group
        l2: {name: Second line, members: [li.wei], robots: {dingtalk: l2-robot},
             locale: zh-CN}          # what the robots post in (members: their own)
      schedules:                     # on-call rotations, see oncall.py
        l2-primary: {time_zone: Asia/Shanghai, rotations: [...]}
      rate_limits:                   # per recipient and channel; more is folded into
        sms: {max: 5, per: 15m}      # one digest (rate_limits.py)
      quiet_hours: {from: "22:00", to: "07:00", time_zone: Asia/Shanghai}
                                     # warnings wait till the end of them (quiet_hours.py);
                                     # a person may have their own rate_limits and quiet_hours
      event_addresses:               # addresses only an event carries (routing.py); without
        sources: [jira]              # this section none is ever used
        mail_domains: [example.com]
        phone_prefixes: ["+86"]      # quoted: E.164, "+" and the country code
        sms_per_number: {max: 10, per: 1h}   # the default; more is refused
      escalations:
        standard:
          - on: warning              # every warning stage; "warning:90" or
                                     # "warning:900s-before" for one; "breach"
            notify:
              - {to: assignee, via: email}
          - on: breach
            notify:
              - {to: "oncall:l2-primary", via: [sms, email]}   # email if the SMS fails
          - on: breach               # only if nobody acknowledged within 30 minutes
            after: 30m
            repeat: {every: 30m, times: 3}
            notify:
              - {to: "supervisor:oncall:l2-primary", via: sms}
              - {to: "group:l2", via: dingtalk}

A chain is a list of *steps*; a step's ``to`` is a target (``targets.py``:
``assignee``, ``assignee_group``, a person id, ``group:<id>``,
``oncall:<schedule>``, ``supervisor:<target>``). ``after`` and ``repeat`` chase
an unacknowledged breach, so only ``on: breach`` steps may have them. ``via``
is a channel or a list of them in fallback order: the next one is used when
the notification on the one before ends ``failed`` (``routing.py``). A group
target's list is all member channels (email, sms) or all chat robots, so each
channel reaches the same recipients.

The addresses of a configured person are the only ones they are reached at:
an event's assignee with the id of a configured person gets the configured
email, phone and chat ids, whatever the event says. An address only the
event carries (the assignee is not configured, or lacks that field) is used
only if the ticket's source is one of ``event_addresses.sources`` and the
address is inside its allow-lists: an email address whose domain is one of
``mail_domains`` (exactly, lower-case), a phone number in international form
starting with one of ``phone_prefixes``. Any other is refused, and recorded
(``routing.py``). SMS to a number only an event gave are capped per number
(``sms_per_number``, enforced when a send is admitted: ``folding.py``).

Who gets a contract's compliance report is read from the same file, from the
SLA engine's ``contracts:`` section: each contract's ``report_to`` (person ids
of ``notifier.people``, or ``group:<id>`` of ``notifier.groups``) becomes
``NotifierConfig.reports[<contract>]``. That is the only place recipients of a
report come from: the ``report_to`` a ``report.due`` event carries is for the
record and chooses nothing (``reports.py``). A contract's other keys are the
engine's and are not read here.

Read once at start-up and passed in (``load_config``). Every error names the
dotted path of the offending value, e.g. ``notifier.escalations.standard.1.notify.0.to``
or ``contracts.acme.report_to.1``. The other top-level sections of the file belong
to the SLA engine and are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from slawatch_common.durations import Duration, parse_duration
from slawatch_common.events import Channel, Identifier, Name
from slawatch_common.runtime import ConfigError, describe_errors, read_yaml
from slawatch_notifier.addresses import mail_domain, phone_number
from slawatch_notifier.messages import DEFAULT_LOCALE, known_locale
from slawatch_notifier.oncall import Schedule, schedule_errors
from slawatch_notifier.quiet_hours import QuietHours
from slawatch_notifier.targets import (
    ASSIGNEE,
    ASSIGNEE_GROUP,
    Assignee,
    AssigneeGroup,
    GroupRef,
    OnCallRef,
    PersonRef,
    SupervisorOf,
    Target,
    parse_target,
)

SECTION = "notifier"
CONTRACTS = "contracts"
"""The engine's section of the file; only each contract's ``report_to`` is read from it."""
REPORTS = "reports"
"""``NotifierConfig``'s field of report recipients: from ``contracts``, never from ``notifier``."""
BREACH = "breach"
GROUP_PREFIX = "group:"

MEMBER_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS})
"""Channels that reach a group member by member; every other one posts to the group's robot."""

_STAGE_PATTERN = r"^(warning|warning:([1-9][0-9]?|100)|warning:[0-9]+s-before|breach)$"
_ADDRESS_FIELD = {Channel.EMAIL: "email", Channel.SMS: "phone"}

Locale = Annotated[str, AfterValidator(known_locale)]
"""A language the notifications can be worded in (``messages.LANGUAGES``): ``zh-CN`` or ``en``."""


def _positive(seconds: int) -> int:
    if seconds <= 0:
        raise ValueError("must be longer than 0s")
    return seconds


PositiveDuration = Annotated[int, BeforeValidator(parse_duration), AfterValidator(_positive)]
ChatAddress = Annotated[str, Field(min_length=1, max_length=320)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """At most ``max`` messages per ``per`` seconds to one recipient on one channel."""

    max: Annotated[int, Field(ge=1, le=10_000)]
    per: PositiveDuration


class Person(_Model):
    """Someone a notification can reach: an address per channel, a locale, a supervisor.

    ``dingtalk`` … ``webhook`` hold what that channel's adapter needs to reach
    the person (a robot name for DingTalk, an id or URL for the others).
    ``rate_limits`` replace the notifier's for this person, channel by
    channel; ``quiet_hours`` replace the notifier's default.
    """

    id: Identifier
    name: Name | None = None
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)] | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9 ()-]{3,32}$")] | None = None
    locale: Locale | None = None
    supervisor: Identifier | None = None
    dingtalk: ChatAddress | None = None
    wecom: ChatAddress | None = None
    feishu: ChatAddress | None = None
    slack: ChatAddress | None = None
    webhook: ChatAddress | None = None
    rate_limits: dict[Channel, RateLimit] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None


class Group(_Model):
    """A team (an L1/L2/L3 line): its members, and a robot per chat channel.

    ``locale`` words what its robots post (members get their own); without
    it, the notifier's ``locale``.
    """

    name: Name | None = None
    locale: Locale | None = None
    members: tuple[Identifier, ...] = ()
    robots: dict[Channel, ChatAddress] = Field(default_factory=dict)


_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = rf"(?=.{{1,253}}$){_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*"
_PHONE_PREFIX = r"\+[1-9][0-9]{0,14}"


def _mail_domain(value: Any) -> Any:
    """A domain, lower-case and without a final dot: ``Example.COM.`` → ``example.com``."""
    if not isinstance(value, str):
        return value
    domain = value.strip().lower().rstrip(".")
    if not re.fullmatch(_DOMAIN, domain):
        raise ValueError(
            f"{value!r} is not a mail domain: write it as example.com, without '@' "
            "(an internationalised one in its xn-- form)"
        )
    return domain


def _phone_prefix(value: Any) -> Any:
    """E.164: ``+``, the country code, and more digits to narrow it (``+86``, ``+8613``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'YAML read {value} as a number: quote the prefix, e.g. "+{value}"')
    if not isinstance(value, str):
        return value
    prefix = value.strip()
    if not re.fullmatch(_PHONE_PREFIX, prefix):
        raise ValueError(f'{value!r} is not a phone prefix: "+" and the country code, e.g. "+86"')
    return prefix


MailDomain = Annotated[str, BeforeValidator(_mail_domain)]
PhonePrefix = Annotated[str, BeforeValidator(_phone_prefix)]

DEFAULT_SMS_PER_NUMBER = RateLimit(max=10, per=3600)
"""At most 10 SMS an hour to one number only an event gave, unless configured otherwise."""


class EventAddresses(_Model):
    """Which addresses that only an event carries may be used (``routing.assignee_of``).

    ``sources``: the ticket sources (``ticket.source``) whose events may give
    an address; none by default, so no event-only address is ever used.
    ``mail_domains`` and ``phone_prefixes`` bound what such a source may give
    (empty: no email address, no phone number). ``sms_per_number``: at most
    ``max`` SMS per ``per`` to one such number (``folding.py``).
    """

    sources: tuple[Identifier, ...] = ()
    mail_domains: tuple[MailDomain, ...] = ()
    phone_prefixes: tuple[PhonePrefix, ...] = ()
    sms_per_number: RateLimit = DEFAULT_SMS_PER_NUMBER

    def trusts(self, source: str) -> bool:
        """Whether events of ``source`` may give addresses at all."""
        return source in self.sources

    def admits(self, channel: Channel, address: str) -> bool:
        """Whether ``address`` on ``channel`` is inside the allow-lists: an email address of
        one of ``mail_domains``, a phone number in international form starting with one of
        ``phone_prefixes``; nothing on any other channel."""
        if channel is Channel.EMAIL:
            return mail_domain(address) in self.mail_domains
        if channel is Channel.SMS:
            number = phone_number(address)
            return number.startswith("+") and number.startswith(self.phone_prefixes)
        return False


def _target_text(value: str) -> str:
    parse_target(value)  # ValueError names what is wrong
    return value


def _channel_list(value: Any) -> Any:
    """``via: sms`` is short for ``via: [sms]`` (its error names ``via``, not ``via.0``)."""
    if not isinstance(value, str):
        return value
    if value not in set(Channel):
        raise ValueError(f"unknown channel {value!r} (channels: {', '.join(Channel)})")
    return (value,)


def _distinct(channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
    repeated = sorted({str(c) for c in channels if channels.count(c) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} named twice; each channel once, in order")
    return channels


Via = Annotated[
    tuple[Channel, ...],
    BeforeValidator(_channel_list),
    Field(min_length=1, max_length=len(Channel)),
    AfterValidator(_distinct),
]


class Notify(_Model):
    """One target of a step and the channels that reach it, the first one first."""

    to: Annotated[str, Field(min_length=1, max_length=400), AfterValidator(_target_text)]
    via: Via

    @property
    def target(self) -> Target:
        return parse_target(self.to)


class Repeat(_Model):
    """Send the step again every ``every`` seconds, ``times`` more times, while unacknowledged."""

    every: PositiveDuration
    times: Annotated[int, Field(ge=1, le=100)]


class Step(_Model):
    """At stage ``on`` (``after`` seconds past the breach, if given), tell every target."""

    on: Annotated[str, Field(pattern=_STAGE_PATTERN)]
    after: Duration | None = None
    repeat: Repeat | None = None
    notify: Annotated[tuple[Notify, ...], Field(min_length=1)]

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

    @property
    def immediate(self) -> bool:
        """Fires when its stage's event arrives (no ``after``)."""
        return not self.after

    @property
    def chases(self) -> bool:
        """Has a firing the scheduler makes: a delayed first one or repeats."""
        return not self.immediate or self.repeat is not None


class NotifierConfig(_Model):
    """People, groups and schedules by id, escalation chains by name; validated, immutable."""

    locale: Locale = DEFAULT_LOCALE
    """The language of every person and group without a ``locale`` of their own."""
    people: dict[Identifier, Person] = Field(default_factory=dict)
    groups: dict[Identifier, Group] = Field(default_factory=dict)
    schedules: dict[Identifier, Schedule] = Field(default_factory=dict)
    escalations: dict[Identifier, tuple[Step, ...]] = Field(default_factory=dict)
    rate_limits: dict[Channel, RateLimit] = Field(default_factory=dict)
    """Per channel, for every recipient without a limit of their own (``rate_limits.py``)."""
    quiet_hours: QuietHours | None = None
    """For every person without quiet hours of their own (``quiet_hours.py``)."""
    event_addresses: EventAddresses = Field(default_factory=EventAddresses)
    """Which addresses only an event carries may be used; by default none."""
    channels: dict[str, Any] = Field(default_factory=dict)
    """Providers and robots per channel, validated with their secrets at start-up
    (``channels/setup.py``); here only the robot names are checked."""
    reports: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Contract name → who its compliance reports are mailed to (person ids and
    ``group:<id>``, as written): the ``report_to`` of each contract of the file's
    ``contracts:`` section, filled in by ``parse_config``; a contract without one maps
    to nobody. Not accepted in the ``notifier:`` section."""

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
    """The address ``channel`` needs to reach ``person``, if known."""
    value: str | None = getattr(person, _ADDRESS_FIELD.get(channel, str(channel)))
    return value


def address_field(channel: Channel) -> str:
    """The name of the person field that holds ``channel``'s address."""
    return _ADDRESS_FIELD.get(channel, str(channel))


def schedule_people(schedule: Schedule) -> set[str]:
    """Everyone a schedule can put on call."""
    rotating = {person for rotation in schedule.rotations for person in rotation.people}
    return rotating | {override.person for override in schedule.overrides}


def load_config(path: Path) -> NotifierConfig:
    """The validated ``notifier:`` section of the YAML file at ``path``, with the report
    recipients of its ``contracts:`` section, or ``ConfigError``."""
    document = read_yaml(path)
    return parse_config(document.get(SECTION), source=str(path), contracts=document.get(CONTRACTS))


def parse_config(
    section: Any, *, source: str = "<config>", contracts: Any = None
) -> NotifierConfig:
    """Validate the ``notifier:`` mapping, and read the report recipients of ``contracts``
    (the file's ``contracts:`` mapping; none if None); ``ConfigError`` lists every problem
    by path."""
    if section is None:
        raise ConfigError(f"{source}: {SECTION}: missing (needs people and escalations)")
    problems: list[str] = []
    if isinstance(section, Mapping) and REPORTS in section:
        section = {key: value for key, value in section.items() if key != REPORTS}
        problems.append(
            f"{SECTION}.{REPORTS}: not a key of this section; a contract's report "
            f"recipients are its {CONTRACTS}.<name>.report_to"
        )
    try:
        config = NotifierConfig.model_validate(section)
    except ValidationError as exc:
        lines = "\n".join([*problems, describe_errors(exc, SECTION)])
        raise ConfigError(f"{source}:\n{lines}") from exc
    recipients, report_problems = report_recipients(contracts, config)
    problems += reference_errors(config) + report_problems
    if problems:
        raise ConfigError(f"{source}:\n" + "\n".join(problems))
    return config.model_copy(update={REPORTS: recipients})


def report_recipients(
    contracts: Any, config: NotifierConfig
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Each contract's ``report_to`` (none without one), and every problem by dotted path:
    ``contracts`` not a mapping, a contract not a mapping, a ``report_to`` not a list of
    text, a person or group that ``config`` does not have. Nothing else of a contract is
    read: it is the engine's to validate."""
    if contracts is None:
        return {}, []
    if not isinstance(contracts, Mapping):
        return {}, [f"{CONTRACTS}: must be a mapping of contract names to contracts"]
    recipients: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for name, contract in contracts.items():
        path = f"{CONTRACTS}.{name}"
        if not isinstance(name, str):
            problems.append(f"{path}: a contract's name must be text")
            continue
        if not isinstance(contract, Mapping):
            problems.append(f"{path}: must be a mapping (customer, policies, report_to, …)")
            continue
        named = contract.get("report_to", [])
        if not isinstance(named, list):
            problems.append(f"{path}.report_to: must be a list of person ids and group:<id>")
            continue
        problems += [
            problem
            for index, who in enumerate(named)
            for problem in _recipient_errors(config, who, f"{path}.report_to.{index}")
        ]
        recipients[name] = tuple(who for who in named if isinstance(who, str))
    return recipients, problems


def _recipient_errors(config: NotifierConfig, who: Any, path: str) -> list[str]:
    if not isinstance(who, str):
        return [f"{path}: must be a person id or group:<id>, not {who!r}"]
    if who.startswith(GROUP_PREFIX):
        group_id = who.removeprefix(GROUP_PREFIX)
        if group_id in config.groups:
            return []
        return [f"{path}: unknown group {group_id!r} (known: {_known(config.groups)})"]
    if who in config.people:
        return []
    return [f"{path}: unknown person {who!r} (known: {_known(config.people)})"]


def reference_errors(config: NotifierConfig) -> list[str]:
    """Every reference that does not resolve, by dotted path (empty when all is well)."""
    problems = _id_errors(config) + _supervisor_errors(config.people)
    problems += _group_errors(config) + _robot_errors(config)
    problems += schedule_errors(config.schedules, set(config.people), f"{SECTION}.schedules")
    for chain, steps in config.escalations.items():
        for index, step in enumerate(steps):
            problems += _step_errors(config, step, f"{SECTION}.escalations.{chain}.{index}")
    return problems


def _id_errors(config: NotifierConfig) -> list[str]:
    problems = [
        f"{SECTION}.people.{key}: reserved for the ticket's {key.replace('_', ' ')}"
        for key in (ASSIGNEE, ASSIGNEE_GROUP)
        if key in config.people
    ]
    problems += [
        f"{SECTION}.people.{key}.id: must equal its key {key!r}"
        for key, person in config.people.items()
        if person.id != key
    ]
    for kind, ids in (("people", config.people), ("groups", config.groups)):
        problems += [
            f"{SECTION}.{kind}.{key}: ':' is reserved for target kinds (group:, oncall:, …)"
            for key in ids
            if ":" in key
        ]
    return problems


def _supervisor_errors(people: Mapping[str, Person]) -> list[str]:
    problems: list[str] = []
    reported: set[str] = set()
    for key, person in people.items():
        path = f"{SECTION}.people.{key}.supervisor"
        if person.supervisor is not None and person.supervisor not in people:
            problems.append(f"{path}: unknown person {person.supervisor!r}")
            continue
        loop = _supervisor_loop(people, key)
        if loop and key not in reported:
            reported.update(loop)
            problems.append(f"{path}: supervisors form a cycle: {' → '.join([*loop, loop[0]])}")
    return problems


def _supervisor_loop(people: Mapping[str, Person], start: str) -> list[str]:
    """The cycle ``start`` is on, in order from ``start``; empty if it is on none."""
    chain = [start]
    current = people[start].supervisor
    while current is not None and current in people and current not in chain:
        chain.append(current)
        current = people[current].supervisor
    return chain if current == start else []


def _group_errors(config: NotifierConfig) -> list[str]:
    problems: list[str] = []
    for key, group in config.groups.items():
        path = f"{SECTION}.groups.{key}"
        problems += [
            f"{path}.members.{position}: unknown person {member!r}"
            for position, member in enumerate(group.members)
            if member not in config.people
        ]
        problems += [
            f"{path}.robots.{channel}: {channel} reaches members one by one; no robot"
            for channel in group.robots
            if channel in MEMBER_CHANNELS
        ]
    return problems


def _robot_errors(config: NotifierConfig) -> list[str]:
    """Robot names of groups and people that ``notifier.channels`` does not define."""
    problems: list[str] = []
    named = [
        (f"{SECTION}.groups.{key}.robots.{channel}", channel, robot)
        for key, group in config.groups.items()
        for channel, robot in group.robots.items()
    ]
    named += [
        (f"{SECTION}.people.{key}.{channel}", channel, getattr(person, str(channel)))
        for key, person in config.people.items()
        for channel in Channel
        if channel not in MEMBER_CHANNELS and getattr(person, str(channel), None) is not None
    ]
    for path, channel, robot in named:
        defined = config.channels.get(str(channel))
        if not isinstance(defined, Mapping) or robot not in defined:
            problems.append(f"{path}: no {channel} robot {robot!r} in {SECTION}.channels.{channel}")
    return problems


def _step_errors(config: NotifierConfig, step: Step, path: str) -> list[str]:
    problems = [
        f"{path}.{field}: only an 'on: breach' step can wait or repeat (this one is on {step.on})"
        for field, value in (("after", step.after), ("repeat", step.repeat))
        if value is not None and step.on != BREACH
    ]
    for position, notify in enumerate(step.notify):
        where = f"{path}.notify.{position}"
        found = _mixed_group_channels(notify, where)
        for index, via in enumerate(notify.via):
            via_path = f"{where}.via" if len(notify.via) == 1 else f"{where}.via.{index}"
            found += _notify_errors(config, notify.target, via, where, via_path)
        problems += dict.fromkeys(found)  # an unknown target is reported once, not per channel
    return problems


def _mixed_group_channels(notify: Notify, path: str) -> list[str]:
    """A group's fallback list must reach the same recipients (members, or the robot) each time."""
    if not isinstance(notify.target, GroupRef | AssigneeGroup) or len(notify.via) < 2:
        return []
    kinds = {channel in MEMBER_CHANNELS for channel in notify.via}
    if len(kinds) == 1:
        return []
    return [
        f"{path}.via: a group's fallback channels are all member channels (email, sms) "
        "or all chat robots, not both"
    ]


def _notify_errors(
    config: NotifierConfig, target: Target, via: Channel, path: str, via_path: str
) -> list[str]:
    """Unknown references of ``target``, and people it surely reaches without ``via``'s address."""
    match target:
        case Assignee():
            return []
        case AssigneeGroup():
            return []
        case GroupRef(group_id):
            return _group_target_errors(config, group_id, via, path, via_path)
        case _:
            people, problems = _people_of(config, target, f"{path}.to")
            return problems or _address_errors(config, people, via, via_path)


def _group_target_errors(
    config: NotifierConfig, group_id: str, via: Channel, path: str, via_path: str
) -> list[str]:
    group = config.groups.get(group_id)
    if group is None:
        return [f"{path}.to: unknown group {group_id!r} (known: {_known(config.groups)})"]
    if via not in MEMBER_CHANNELS:
        if via in group.robots:
            return []
        return [f"{via_path}: group {group_id!r} has no {via} robot (robots: {{{via}: <name>}})"]
    return _address_errors(config, list(group.members), via, via_path)


def _people_of(config: NotifierConfig, target: Target, path: str) -> tuple[list[str], list[str]]:
    """The configured people ``target`` may resolve to, or the problems that stop it resolving."""
    match target:
        case PersonRef(person_id):
            if person_id in config.people:
                return [person_id], []
            known = f"{_known(config.people)}, {ASSIGNEE}"
            return [], [f"{path}: unknown person {person_id!r} (known: {known})"]
        case OnCallRef(name):
            schedule = config.schedules.get(name)
            if schedule is None:
                return [], [
                    f"{path}: unknown schedule {name!r} (known: {_known(config.schedules)})"
                ]
            return sorted(schedule_people(schedule) & set(config.people)), []
        case SupervisorOf(inner):
            inner_people, problems = _people_of(config, inner, path)
            missing = [p for p in inner_people if config.people[p].supervisor is None]
            problems += [f"{path}: {p!r} has no supervisor" for p in missing]
            return [
                config.people[p].supervisor or "" for p in inner_people if p not in missing
            ], problems
        case _:  # the assignee: known only when the event arrives
            return [], []


def _address_errors(
    config: NotifierConfig, people: list[str], via: Channel, via_path: str
) -> list[str]:
    field = address_field(via)
    return [
        f"{via_path}: {person!r} has no {field}, which {via} needs"
        for person in dict.fromkeys(people)
        if address_of(config.people[person], via) is None
    ]


def _known(ids: Mapping[str, Any]) -> str:
    return ", ".join(sorted(ids)) or "none"
