"""slawatch ingest: webhooks in, validated canonical events onto Kafka.

A request travels through four steps, each in its own module:

1. ``auth``       the bearer token is checked before the body is read;
2. ``parsing``    the body (a JSON object, a JSON array or NDJSON) becomes
                  validated ``TicketEvent``/``MonitoringEvent`` values, or a
                  list of every bad field; nothing is sent unless all are valid
                  and every instant lies in the accepted window (``window``);
3. ``publishing`` every event is sent to its topic, keyed for ordering, and the
                  request waits for the broker's acknowledgement of each;
4. ``events_api`` answers 202 only after that acknowledgement, 503 otherwise.

``POST /v1/webhooks/{source}`` (``webhooks_api``) takes the webhooks of
ticketing systems and monitoring in their own shapes instead:

1. ``ratelimit``  a token bucket per source;
2. ``signatures`` the delivery is checked as its source signs it;
3. ``sources``    one pure normaliser per kind of source turns it into
                  canonical events, or says why it is of no use (ignored);
                  their instants are held against the same ``window``;
4. ``recent``, ``publishing`` the events not produced lately are published,
                  and 202 follows the broker's acknowledgement.

Which sources exist, with which credentials and maps, is ``webhook_config``
(the ``ingest.sources`` section of the configuration file).

``app.create_app(settings, sources)`` wires them together; ``main.main`` serves it.
"""
