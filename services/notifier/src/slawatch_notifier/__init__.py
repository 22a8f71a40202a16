"""slawatch notifier: SLA warnings and breaches become escalations by email, SMS and chat.

Where to start reading — the pipeline, one module per step:

    <prefix>.sla ──▶ intake.py ──▶ escalation.py (pure: state, steps, keys)
                        │            └▶ planner.py: routing.py + templates.py + acklink.py
                        ▼
              escalation_store.py ──▶ notifier_escalations, notifier_scheduled_steps,
                        │             store.py: notifier_notifications (dedup by id)
    scheduler.py ───────┤ (waiting and repeating breach steps, at their instant)
    acks.py ────────────┘ (POST /v1/acks, GET /v1/acks/<token>: acknowledge, cancel)
                        │
           channels/ ◀── dispatch.py (claim, send, record) ──▶ outbox.py ──▶ <prefix>.notifications

- ``config.py``   the ``notifier:`` section: people, groups, schedules, chains;
- ``targets.py``  (pure) the ``to:`` grammar: assignee, group:, oncall:, supervisor:, …;
- ``escalation.py`` (pure) an escalation's life, which steps fire, the dedup keys;
- ``routing.py``  (pure) who a firing step reaches now, on which channel and address;
- ``oncall.py``   (pure) who a schedule has on call at an instant; ``oncall_api.py``;
- ``templates.py`` (pure) subject, text and HTML of each message, with its ack link;
- ``messages.py`` (pure) their words, one table per language (zh-CN, en);
- ``acklink.py``  (pure) signed, expiring acknowledgement tokens;
- ``retry.py``    (pure) a notification's states and the backoff schedule;
- ``channels/``   one adapter per provider behind the port in ``channels/port.py``;
- ``store.py``, ``escalation_store.py`` the tables and every guarded statement; ``migrations/``;
- ``intake.py``, ``scheduler.py``, ``dispatch.py``, ``outbox.py`` the four workers;
- ``app.py``      the FastAPI app and its lifespan; ``main.py`` the command line.
"""
