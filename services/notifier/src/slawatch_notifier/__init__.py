"""slawatch notifier: SLA warnings and breaches become email and SMS escalations.

Where to start reading — the pipeline, one module per step:

    <prefix>.sla ──▶ intake.py ──▶ routing.py + templates.py ──▶ store.py (dedup by id)
                                                                   │
           channels/email.py, channels/sms.py ◀── dispatch.py ◀────┘ (claim, send, record)
                                                      │
           <prefix>.notifications ◀── outbox.py ◀─────┘ (NotificationRecord after commit)

- ``config.py``   the ``notifier:`` section: people and escalation chains;
- ``routing.py``  (pure) which notifications an SLA event asks for; the dedup key;
- ``templates.py`` (pure) subject, text and HTML of each message;
- ``retry.py``    (pure) a notification's states and the backoff schedule;
- ``channels/``   one adapter per provider behind the port in ``channels/port.py``;
- ``store.py``    the tables and every guarded statement on them; ``migrations/``;
- ``intake.py``, ``dispatch.py``, ``outbox.py`` the three workers;
- ``app.py``      the FastAPI app and its lifespan; ``main.py`` the command line.
"""
