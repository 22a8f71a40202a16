"""Dispatch: due notifications are claimed, admitted or folded, sent, and their outcome recorded.

For each due notification (``pending`` and ``next_attempt_at <= now``):

1. claim: in one transaction mark it ``sending`` and count the attempt
   (``store.claim_due``), then hold its first attempt against its
   recipient's rate limit (``folding.admit``): over the limit it becomes
   ``folded`` into the window's digest instead; an SMS to a number only an
   event gave is first held against that number's cap, over which it becomes
   ``refused`` (logged, counted) and its fallback takes over; COMMIT, before
   any byte leaves the process;
2. send it through its channel's port (``channels/``), outside any transaction;
3. record the attempt and move the notification to its next state
   (``retry.next_step``) — one recorder writes every attempt that ended since
   its last pass in one transaction, so under load a transaction carries many
   (the send's slot stays taken until then): ``sent``; ``pending`` again after a
   full-jitter backoff while its retry budget lasts (per channel, from its
   first attempt), and once it has been failing for ``fallback_after`` its
   standby fallback on the next channel is released to be tried as well; or
   ``failed`` when the failure is permanent, the send raised, or the budget is
   spent — then its standby fallback becomes pending (after ``sent`` the
   fallbacks not yet sent are cancelled as not needed; ``fallback.py``);
4. ring the outbox, which publishes the ``NotificationRecord`` of every
   finished notification after this commit.

No send ends the dispatcher: whatever a channel's ``send`` raises (a bug in
an adapter, a message that cannot be built) is logged once with its
traceback and recorded as a permanent failure of that attempt, the exception's
class and message its reason; the slot goes on with the next notification.

The log lines name a notification by id; a provider's words they carry (an
attempt's error, a traceback) show the address as its hash
(``addresses.AddressHasher.redact``), as the published record does: SMTP
replies and exceptions often quote the address they refused.
A failed notification is sent again only by hand (``store.redrive``, the
``redrive`` command): pending, due now, with a fresh budget. The claimer
looks for due rows at least every ``IDLE_WAIT_S`` even when no doorbell
rings, so rows another process made due (a redrive) go out within seconds.

Each channel has its own lane (``_Lane``): ``concurrency`` slots, each a task
that takes the next claimed notification of the channel, sends it and waits
until its attempt is recorded. A lane claims for its free slots and, while it
flows, ahead of them: as many as it finished in the last ``AHEAD_WINDOW_S``
(at most ``MAX_AHEAD``), so a busy channel claims in batches and its slots
never wait for a claim. A lane that is idle or stuck has finished nothing
lately and claims only for its free slots: a provider that hangs until the
send timeout holds its own slots and nothing else. A lane that found less
than it asked for is not asked again until its next row falls due or the
doorbell rings (new rows). Intake never waits for dispatch.

A claimed notification is ``sending`` while it waits in its lane's queue. An
ack that arrives then does not stop it, as it does not stop one being sent;
the queue holds at most about ``AHEAD_WINDOW_S`` of the channel's sending. At
a stop the notifications still queued are given back (``store.release``):
pending again, the attempt not counted.

The remaining at-least-once window: a crash after the provider accepted a
message but before step 3 committed leaves the row ``sending``, at most
``concurrency`` of them per channel. ``recover``, run once at start, records
that attempt as ``interrupted``, counts it on the notification and sends it
again with the same Message-ID (email) or idempotency key (SMS), so the
repeat is recognisable downstream but may still reach the recipient twice. A
crash also leaves the queued ones ``sending``; they are sent for the first
time then, with an ``interrupted`` attempt on their record. A notification
interrupted ``RetryPolicy.max_interrupted`` times (3 by default) is
``failed`` instead, "interrupted 3 times while sending", and its fallback
takes over: a message that brings the process down every time it is sent
ends failed, not in a crash loop. ``recover`` assumes one dispatching process
per database.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
from collections import Counter, deque
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from slawatch_common.consumer import is_fatal, is_transient
from slawatch_common.events import Channel
from slawatch_common.runtime import Backoff
from slawatch_notifier import fallback, folding, store
from slawatch_notifier.acklink import AckLinks
from slawatch_notifier.addresses import AddressHasher, redacted
from slawatch_notifier.channels.port import ChannelPort, Delivered, Outcome, Permanent, Retryable
from slawatch_notifier.clock import Clock
from slawatch_notifier.folding import Admission, Caps, Limits, uncapped, unlimited
from slawatch_notifier.metrics import FinalReason, NotifierMetrics
from slawatch_notifier.retry import (
    NextStep,
    Progress,
    RetryPolicy,
    Status,
    attempt_outcome,
    next_step,
)

log = logging.getLogger(__name__)

IDLE_WAIT_S = 5.0
"""Longest sleep with free slots and nothing due; intake rings the doorbell sooner. Rows
made due without the doorbell (a redrive from another process) wait at most this long."""

MIN_WAIT_S = 0.01

AHEAD_WINDOW_S = 0.25
"""A lane claims ahead about this long of its recent sending (``_Lane``)."""

MAX_AHEAD = 64
"""At most this many claimed ahead per channel."""

BACKOFF_CAP_S = 30.0
"""Longest wait before trying the database again after a transient fault."""


class Dispatcher:
    """The sender loop; ``run`` never returns and raises only on bugs or a dead database."""

    def __init__(
        self,
        engine: AsyncEngine,
        channels: Mapping[Channel, ChannelPort],
        policy: RetryPolicy,
        *,
        metrics: NotifierMetrics,
        clock: Clock,
        rand: random.Random,
        doorbell: asyncio.Event,
        outbox_bell: asyncio.Event,
        concurrency: Mapping[Channel, int],
        limits: Limits = unlimited,
        links: AckLinks | None = None,
        caps: Caps = uncapped,
        hasher: AddressHasher | None = None,
    ) -> None:
        """``policy``: backoff, retry budgets, fallback delay, interruption cap;
        ``concurrency``: each channel's slots (a channel it omits is never sent on);
        ``limits``: the rate limit of a recipient on a channel (``rate_limits.limit_for``);
        ``links``: signs a digest's acknowledgement link; ``caps``: the cap on SMS to a
        number only an event gave (``rate_limits.cap_for``); ``hasher``: what the log
        shows for an address a provider's words quote (without it, its masked form)."""
        self._engine = engine
        self._channels = channels
        self._policy = policy
        self._metrics = metrics
        self._clock = clock
        self._rand = rand
        self._doorbell = doorbell
        self._outbox_bell = outbox_bell
        self._lanes = {
            channel: _Lane(channel, concurrency.get(channel, 0))
            for channel in channels
            if concurrency.get(channel, 0) > 0
        }
        self._limits = limits
        self._links = links
        self._caps = caps
        self._hasher = hasher
        self._ended: list[_Ended] = []
        self._record_bell = asyncio.Event()
        self._room = asyncio.Event()
        self._draining = False
        self._freed = asyncio.Event()

    async def recover(self) -> list[store.Interrupted]:
        """Make notifications a crash left ``sending`` due again, or failed once a crash
        interrupted them ``max_interrupted`` times (their fallbacks take over); each one
        found. Call before ``run``."""
        now = self._clock.now()
        promoted: dict[str, tuple[store.NotificationRef, ...]] = {}
        async with self._engine.begin() as conn:
            found = await store.recover_interrupted(conn, now, self._policy.max_interrupted)
            for item in found:
                if item.failed:
                    note = f"fallback: {item.id} failed on {item.channel}: {item.error}"
                    promoted[item.id] = await fallback.take_over(conn, item, note, now)
        resent = sum(not item.failed for item in found)
        if resent:
            log.warning("resending %d notifications interrupted by a crash", resent)
        for item in found:
            if item.failed:
                reason = FinalReason.INTERRUPTED
                self._metrics.notifications.labels(item.channel, Status.FAILED, reason).inc()
                log.error("notification %s failed: %s", item.id, item.error)
                self._count_fallbacks(item.id, fallback.Settled(promoted=promoted[item.id]))
        if promoted:
            self._outbox_bell.set()
        return found

    async def run(self) -> None:
        claiming: asyncio.Future[None] | None = None
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._record_ended(), name="record attempts")
                for lane in self._lanes.values():
                    for slot in range(lane.slots):
                        tasks.create_task(self._send_from(lane), name=f"{lane.channel} slot {slot}")
                claims = Backoff("dispatcher", self._metrics.heartbeats, cap_s=BACKOFF_CAP_S)
                while True:
                    if self._draining:
                        await asyncio.Event().wait()  # until cancelled: claim nothing more
                    if self._doorbell.is_set():  # new rows, of any channel
                        self._doorbell.clear()
                        for lane in self._lanes.values():
                            lane.drained_until = None
                    self._room.clear()
                    # a claim, once begun, ends with its rows queued: a stop waits for it below
                    claiming = asyncio.ensure_future(self._claim())
                    try:
                        await asyncio.shield(claiming)
                    except Exception as exc:
                        await claims.after(exc)
                        continue
                    claims.ok()
                    await self._wait()
        finally:
            await asyncio.shield(self._release_queued(claiming))

    async def drain(self, deadline_s: float) -> int:
        """Stop claiming, give back what is claimed and not started, and wait (at most
        ``deadline_s``) until the sends in flight have ended and been recorded. Then
        cancel ``run``. How many sends were still in flight at the deadline (they stay
        ``sending``; ``recover`` takes them up at the next start)."""
        self._draining = True
        self._room.set()
        await self._release_queued(None)
        deadline = time.monotonic() + deadline_s
        while self._busy() and (remaining := deadline - time.monotonic()) > 0:
            self._freed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), remaining)
        left = self._busy()
        if left:
            log.warning("%d sends still in flight at the shutdown deadline", left)
        return left

    def _busy(self) -> int:
        return sum(lane.busy for lane in self._lanes.values())

    async def _claim(self) -> None:
        """Claim for every lane that has room and may find something due.

        A lane that got less than it asked for is drained: it is not looked at
        again until its next row falls due or the doorbell rings.
        """
        moment = time.monotonic()
        for lane in self._lanes.values():
            if lane.drained_until is not None and lane.drained_until <= moment:
                lane.drained_until = None
        wants = {
            lane.channel: lane.want()
            for lane in self._lanes.values()
            if lane.needs_claim() and lane.drained_until is None
        }
        if not wants:
            return
        now = self._clock.now()
        async with self._engine.begin() as conn:
            claimed = await store.claim_due(conn, now, wants)
            admission = await folding.admit(
                conn, claimed, self._limits, now, self._links, caps=self._caps
            )
            got = Counter(item.channel for item in claimed)
            short = [channel for channel, want in wants.items() if got[channel] < want]
            due = await store.next_due_by_channel(conn, short) if short else {}
        self._count_folded(admission)
        self._count_refused(admission)
        if admission.folded:
            self._outbox_bell.set()
        for sending in admission.send:
            self._lanes[sending.channel].queue.put_nowait(sending)
        for channel in short:
            wait = IDLE_WAIT_S
            if channel in due:
                wait = min(IDLE_WAIT_S, max(MIN_WAIT_S, (due[channel] - now).total_seconds()))
            self._lanes[channel].drained_until = moment + wait

    async def _wait(self) -> None:
        """Until the doorbell rings, a lane has room, or a drained lane's next row falls due."""
        moment = time.monotonic()
        until = [lane.drained_until for lane in self._lanes.values() if lane.drained_until]
        timeout = max(0.0, min(until) - moment) if until else None
        waits = [
            asyncio.ensure_future(self._doorbell.wait()),
            asyncio.ensure_future(self._room.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _send_from(self, lane: _Lane) -> None:
        """One slot of ``lane``: take a claimed notification, send it, wait until it is recorded."""
        while True:
            claimed = await lane.queue.get()
            lane.busy += 1
            self._metrics.in_flight.labels(lane.channel).inc()
            try:
                ended = await self._deliver(claimed)
            finally:
                self._metrics.in_flight.labels(lane.channel).dec()
            lane.ended()
            self._ended.append(ended)
            self._record_bell.set()
            await ended.recorded.wait()
            lane.busy -= 1
            self._freed.set()
            if lane.needs_claim():
                self._room.set()

    async def _deliver(self, claimed: store.Claimed) -> _Ended:
        started_at, started = self._clock.now(), time.perf_counter()
        outcome, raised = await self._send(claimed)
        latency = time.perf_counter() - started
        now = self._clock.now()
        progress = Progress(
            claimed.attempts,
            claimed.channel,
            retry_from=claimed.retry_from or started_at,
            failing_since=claimed.failing_since,
        )
        step = next_step(outcome, progress, self._policy, now, self._rand.random())
        attempt = store.Attempt(started_at, round(latency * 1000), outcome)
        return _Ended(claimed, attempt, step, latency, raised)

    async def _send(self, claimed: store.Claimed) -> tuple[Outcome, bool]:
        """One attempt; whether ``send`` raised. What it raises is a permanent failure of the
        attempt (a bug or a message that cannot be built), logged once with its traceback."""
        try:
            return await self._channels[claimed.channel].send(claimed.outbound), False
        except Exception as exc:
            trace = "".join(traceback.format_exception(exc)).rstrip()
            log.error(  # the traceback in the message: its words may quote the address
                "sending %s on %s raised; the notification fails\n%s",
                claimed.id,
                claimed.channel,
                self._shown(claimed, trace),
            )
            text = str(exc)
            reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            return Permanent(reason), True

    async def _record_ended(self) -> None:
        """Record every attempt that ended since the last pass, in one transaction.

        While one pass writes, more sends end; the next pass takes them all, so
        under load a transaction records many attempts and costs each little.
        """
        recording = Backoff("dispatcher", self._metrics.heartbeats, cap_s=BACKOFF_CAP_S)
        while True:
            await self._record_bell.wait()
            self._record_bell.clear()
            ended, self._ended = self._ended, []
            if not ended:
                continue
            try:
                await self._record(ended)
            except Exception as exc:
                if is_fatal(exc):
                    raise
                if is_transient(exc):
                    # nothing was written: keep them, in order, for the next pass
                    self._ended[:0] = ended
                    self._record_bell.set()
                    await recording.after(exc)
                    continue
                await self._record_each(ended, exc)

    async def _record_each(self, ended: list[_Ended], exc: Exception) -> None:
        """Record ``ended`` one by one after recording them together raised ``exc``; one
        that fails alone stays ``sending`` (``recover`` takes it up at the next start)."""
        log.warning("recording %d attempts together raised %r; one by one", len(ended), exc)
        for item in ended:
            try:
                await self._record([item])
            except Exception as alone:
                if is_fatal(alone):
                    raise
                if is_transient(alone):
                    self._ended.append(item)
                    self._record_bell.set()
                    continue
                log.exception("the attempt of %s cannot be recorded", item.claimed.id)
                item.recorded.set()

    async def _record(self, ended: list[_Ended]) -> None:
        """Record the attempts in ``ended`` in one transaction, then count them and free
        their slots."""
        if ended:
            now = self._clock.now()
            async with self._engine.begin() as conn:
                recorded = await store.finish_attempts(
                    conn, [(e.claimed, e.attempt, e.step) for e in ended], now
                )
                final = [
                    (e.claimed, e.step) for e in ended if e.claimed.id in recorded and e.step.final
                ]
                settled = await fallback.settle_many(conn, final, now)
                for e in ended:
                    if e.claimed.id in recorded and e.step.release_fallback:
                        released = await fallback.release(conn, e.claimed, e.step, now)
                        settled[e.claimed.id] = fallback.Settled(promoted=released)
                retried = [
                    e.claimed.id
                    for e in ended
                    if e.claimed.id in recorded and e.step.status is Status.PENDING
                ]
                needless = await fallback.stand_down_needless(conn, retried, now)
            for e in ended:
                if e.claimed.id in recorded:
                    self._count(e, now)
                    self._count_fallbacks(
                        e.claimed.id, settled.get(e.claimed.id, fallback.Settled()), e.step
                    )
                e.recorded.set()
            for ref in needless:
                reason = FinalReason.NOT_NEEDED
                self._metrics.notifications.labels(ref.channel, Status.CANCELLED, reason).inc()
            if any(e.step.status is Status.PENDING for e in ended):
                self._doorbell.set()  # a retry falls due later: the claimer looks again
            if final:
                self._outbox_bell.set()

    async def _release_queued(self, claiming: asyncio.Future[None] | None) -> None:
        """Give back what was claimed ahead and not started (at shutdown): pending again."""
        if claiming is not None:
            with suppress(Exception):
                await claiming
        queued = [
            lane.queue.get_nowait()
            for lane in self._lanes.values()
            for _ in range(lane.queue.qsize())
        ]
        if not queued:
            return
        try:
            async with self._engine.begin() as conn:
                await store.release(conn, queued, self._clock.now())
        except Exception:  # the next start's recover resends them
            log.warning("could not release %d claimed notifications", len(queued), exc_info=True)

    def _count(self, ended: _Ended, now: datetime) -> None:
        claimed, step = ended.claimed, ended.step
        channel = claimed.channel
        self._metrics.attempts.labels(channel, attempt_outcome(ended.attempt.outcome)).inc()
        self._metrics.send_seconds.labels(channel).observe(ended.latency)
        if step.status is Status.PENDING:
            self._metrics.retries.labels(channel).inc()
            error = self._shown(claimed, step.error or "")
            log.info("retrying %s at %s: %s", claimed.id, _iso(step.next_attempt_at), error)
        elif step.final:
            reason = _reason(ended)
            self._metrics.notifications.labels(channel, step.status, reason).inc()
            if step.status is Status.SENT:
                delivery = max(0.0, (now - claimed.due_at).total_seconds())
                self._metrics.delivery_seconds.labels(channel).observe(delivery)
            log.log(
                logging.WARNING if step.status is Status.FAILED else logging.INFO,
                "notification %s %s after %d attempt(s)%s",
                claimed.id,
                step.status,
                claimed.attempts,
                f": {self._shown(claimed, step.error)}" if step.error else "",
            )

    def _shown(self, claimed: store.Claimed, text: str) -> str:
        """``text`` (a provider's words, an exception's) as a log line shows it: every
        spelling of the notification's address in it replaced by the address's hash."""
        return redacted(text, claimed.channel, claimed.outbound.address, self._hasher)

    def _count_folded(self, admission: Admission) -> None:
        for folded in admission.folded:
            channel = folded.claimed.channel
            self._metrics.notifications.labels(
                channel, Status.FOLDED, FinalReason.RATE_LIMITED
            ).inc()
            log.info("notification %s folded into %s", folded.claimed.id, folded.digest_id)
        for _recipient, channel in admission.digests_opened:
            self._metrics.digests.labels(channel).inc()

    def _count_refused(self, admission: Admission) -> None:
        for refused in admission.refused:
            channel, refused_id = refused.claimed.channel, refused.claimed.id
            self._metrics.notifications.labels(channel, Status.REFUSED, FinalReason.SMS_CAP).inc()
            log.warning(
                "notification %s to %s refused: %s",
                refused_id,
                refused.claimed.recipient,
                refused.reason,
            )
            for promoted in refused.promoted:
                self._metrics.fallbacks.labels(promoted.channel).inc()
                log.warning("%s was refused: falling back to %s", refused_id, promoted.id)
            if refused.promoted:
                self._doorbell.set()

    def _count_fallbacks(
        self, notification_id: str, settled: fallback.Settled, step: NextStep | None = None
    ) -> None:
        retried = step is not None and step.status is Status.PENDING
        for promoted in settled.promoted:
            self._metrics.fallbacks.labels(promoted.channel).inc()
            if retried:
                log.warning(
                    "%s keeps failing: trying %s as well while it is retried",
                    notification_id,
                    promoted.id,
                )
            else:
                log.warning("%s failed: falling back to %s", notification_id, promoted.id)
        for stood_down in settled.cancelled:
            reason = FinalReason.NOT_NEEDED
            self._metrics.notifications.labels(stood_down.channel, Status.CANCELLED, reason).inc()
        if settled.promoted:
            self._doorbell.set()


@dataclass(frozen=True, slots=True)
class _Ended:
    """A finished send waiting to be recorded; ``recorded`` is set once it is."""

    claimed: store.Claimed
    attempt: store.Attempt
    step: NextStep
    latency: float
    raised: bool = False
    """``send`` raised instead of answering (the attempt counts as a permanent failure)."""
    recorded: asyncio.Event = field(default_factory=asyncio.Event)


class _Lane:
    """One channel's slots and the notifications claimed ahead for them.

    Ahead of its free slots a lane claims as many as it finished sending in
    the last ``AHEAD_WINDOW_S`` (at most ``MAX_AHEAD``): a lane that flows
    keeps a short queue and claims in batches, one that is idle or stuck
    (nothing finished lately) claims only for its free slots.
    """

    def __init__(self, channel: Channel, slots: int) -> None:
        self.channel = channel
        self.slots = slots
        self.queue: asyncio.Queue[store.Claimed] = asyncio.Queue()
        self.busy = 0
        self.drained_until: float | None = None
        """Nothing was due for this lane: not claimed from until then (``time.monotonic``)."""
        self._ends: deque[float] = deque()

    def ended(self) -> None:
        self._ends.append(time.monotonic())

    def ahead(self) -> int:
        since = time.monotonic() - AHEAD_WINDOW_S
        while self._ends and self._ends[0] < since:
            self._ends.popleft()
        return min(MAX_AHEAD, len(self._ends))

    def want(self) -> int:
        """How many more to claim: the free slots and the lead, less what is queued."""
        return self.slots - self.busy + self.ahead() - self.queue.qsize()

    def needs_claim(self) -> bool:
        """Whether to claim now: the room is at least half the lead (one when there is none)."""
        return self.want() >= max(1, self.ahead() // 2)


def _reason(ended: _Ended) -> FinalReason:
    """The reason class of a final outcome (a retryable one: the retry budget was spent)."""
    if ended.raised:
        return FinalReason.SEND_ERROR
    match ended.attempt.outcome:
        case Delivered():
            return FinalReason.DELIVERED
        case Permanent():
            return FinalReason.PERMANENT
        case Retryable():
            return FinalReason.BUDGET_EXHAUSTED


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"
