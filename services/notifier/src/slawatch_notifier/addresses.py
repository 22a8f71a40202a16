"""Addresses as personal data: normalised to compare, masked for words, hashed for records.

An email address or phone number leaves the notifier only towards its
recipient's provider. What the notifier publishes about a notification
(``outbox.record_for``: the ``NotificationRecord`` on ``<prefix>.notifications``)
and its log lines about a send name the recipient by id and the address by
its hash (``AddressHasher``); a refusal's words show a masked form (``mask``).
A provider's words (an SMTP reply, an SMS provider's error, an exception's
message or traceback) often quote the address: in a record and in a log line
every spelling of it there is replaced by the hash (``AddressHasher.redact``).
The database keeps the address a notification is sent to.

The hash is keyed: ``hmac-sha256:`` and the first 16 hex digits of
HMAC-SHA256 over the normalised address, under a key derived from the ack
secret (``SLAWATCH_ACK_SECRET``). Phone numbers are few enough to be hashed
one by one in minutes, so an unkeyed hash would hide none of them from
whoever reads the topic; keyed, the same address gives the same hash in every
record (records can be grouped by address, and someone who has the key can
tell whether a given address was reached), and nobody without the key can
find the address from it. A new ack secret gives new hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from slawatch_common.events import Channel

HASH_PREFIX = "hmac-sha256:"
HASH_HEX_DIGITS = 16
_KEY_LABEL = b"slawatch-notifier address hash v1"
_PHONE_SEPARATORS = str.maketrans("", "", " ()-.")


def phone_number(text: str) -> str:
    """``text`` without separators: ``+86 (138) 0000-0099`` → ``+8613800000099``."""
    return text.strip().translate(_PHONE_SEPARATORS)


def mail_domain(address: str) -> str:
    """The domain of an email address, lower-case, without a final dot."""
    return address.strip().rpartition("@")[2].lower().rstrip(".")


def normalise(channel: Channel | str, address: str) -> str:
    """The form two spellings of one address share: an email address lower-case, a phone
    number without separators, anything else without surrounding blanks."""
    if channel == Channel.EMAIL:
        return address.strip().lower()
    if channel == Channel.SMS:
        return phone_number(address)
    return address.strip()


def mask(channel: Channel | str, address: str) -> str:
    """What a log line or a refusal may show of an address: an email address's domain
    (``…@example.com``), a phone number's first three and last two characters
    (``+44…89``); nothing of anything else."""
    if channel == Channel.EMAIL:
        return f"…@{mail_domain(address)}"
    if channel == Channel.SMS:
        number = phone_number(address)
        return f"{number[:3]}…{number[-2:]}" if len(number) >= 8 else "…"
    return "…"


def spellings(channel: Channel | str, address: str) -> list[str]:
    """How a provider's words may quote ``address``, longest first: as given, normalised,
    escaped as ``repr`` writes it (as an exception's message may show it) and, for a phone
    number, without its ``+`` (as some providers take it); none for a blank address."""
    if not address.strip():
        return []
    found = {address, normalise(channel, address), repr(address)[1:-1]}
    if channel == Channel.SMS:
        number = phone_number(address)
        if number.startswith("+") and len(number) >= 9:
            found.add(number[1:])
    return sorted(found - {""}, key=len, reverse=True)


def replace_address(text: str, channel: Channel | str, address: str, stand_in: str) -> str:
    """``text`` with every spelling of ``address`` (``spellings``, in any case) replaced by
    ``stand_in``."""
    quoted = spellings(channel, address)
    if not quoted or not text:
        return text
    pattern = re.compile("|".join(re.escape(spelling) for spelling in quoted), re.IGNORECASE)
    return pattern.sub(lambda _: stand_in, text)


def redacted(text: str, channel: Channel | str, address: str, hasher: AddressHasher | None) -> str:
    """``text`` as a log line may show it: every spelling of ``address`` replaced by its
    hash (``hasher.redact``), or by its masked form when there is no ``hasher``."""
    if hasher is not None:
        return hasher.redact(channel, address, text)
    return replace_address(text, channel, address, mask(channel, address))


class AddressHasher:
    """The keyed hash that stands for an address wherever the address itself must not be."""

    def __init__(self, secret: bytes) -> None:
        """``secret``: the ack links' key; the hash key is derived from it, never equal."""
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    def __call__(self, channel: Channel | str, address: str) -> str:
        """``hmac-sha256:<16 hex digits>`` of the normalised ``address``."""
        text = normalise(channel, address).encode("utf-8", "surrogatepass")
        digest = hmac.new(self._key, text, hashlib.sha256).hexdigest()
        return f"{HASH_PREFIX}{digest[:HASH_HEX_DIGITS]}"

    def redact(self, channel: Channel | str, address: str, text: str) -> str:
        """``text`` (a provider's words) as a record or a log line may show it: every
        spelling of ``address`` in it replaced by the address's hash."""
        if not address.strip():
            return text
        return replace_address(text, channel, address, self(channel, address))
