"""Two channels behind one port: the primary first, the secondary when the primary fails.

``send`` asks the primary; whatever keeps it from delivering (a retryable or
a permanent answer) the secondary is asked once, in the same call. The port
does not say whose fault a failure was, so the secondary is asked for every
failure: a number both providers reject costs one extra request, while an
outage, a quota or a rejected sign at one provider is exactly what a second
provider is for.

The answer is ``Delivered`` if either delivered; otherwise one outcome whose
reason names both failures, ``Retryable`` if either was retryable (a later
attempt, which again starts with the primary, may succeed) and ``Permanent``
only if both were.

A primary that timed out may still have sent its message, so failing over
can deliver twice; for alerts a duplicate is better than silence. ``send``
takes at most the two channels' time limits together.
"""

from __future__ import annotations

from slawatch_notifier.channels.port import (
    ChannelPort,
    Delivered,
    Outbound,
    Outcome,
    Permanent,
    Retryable,
)


def combine(first: Retryable | Permanent, second: Outcome, names: tuple[str, str]) -> Outcome:
    """The outcome of a failed primary ``first`` followed by the secondary's ``second``."""
    if isinstance(second, Delivered):
        return second
    reason = f"{names[0]}: {first.reason}; {names[1]}: {second.reason}"
    if isinstance(first, Retryable) or isinstance(second, Retryable):
        return Retryable(reason)
    return Permanent(reason)


class FailoverChannel:
    """A ``ChannelPort`` over two ``ChannelPort``s; ``names`` label them in reasons."""

    def __init__(
        self,
        primary: ChannelPort,
        secondary: ChannelPort,
        names: tuple[str, str] = ("primary", "secondary"),
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._names = names

    async def send(self, outbound: Outbound) -> Outcome:
        first = await self._primary.send(outbound)
        if isinstance(first, Delivered):
            return first
        return combine(first, await self._secondary.send(outbound), self._names)
