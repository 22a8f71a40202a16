"""slawatch ingest: webhooks in, validated canonical events onto Kafka.

A request travels through four steps, each in its own module:

1. ``auth``       the bearer token is checked before the body is read;
2. ``parsing``    the body (a JSON object, a JSON array or NDJSON) becomes
                  validated ``TicketEvent``/``MonitoringEvent`` values, or a
                  list of every bad field; nothing is sent unless all are valid;
3. ``publishing`` every event is sent to its topic, keyed for ordering, and the
                  request waits for the broker's acknowledgement of each;
4. ``events_api`` answers 202 only after that acknowledgement, 503 otherwise.

``app.create_app(settings)`` wires them together; ``main.main`` serves it.
"""
