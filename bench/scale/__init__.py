"""One SLA engine holding a million open clocks: firing lateness, memory per clock, restart.

``bench_engine_scale()`` runs it and returns the figures; ``python -m bench.scale``
prints them. One stock ``slawatch-engine`` process on PostgreSQL; broker,
database, engine, ingest and load share the machine. The phases (``run.py``):

1. **empty**: the engine on a migrated, empty database; its RSS at rest.
2. **seed** (``seed.py``, rows from ``rows.py``): ``SLAWATCH_BENCH_CLOCKS`` open
   clocks (default 1,000,000; two per ticket, response and resolution) COPYed
   into PostgreSQL, keys and indexes dropped meanwhile and rebuilt. The rows are
   the engine's own, built by its ``Ledger`` and ``Workset``; a sample is built in
   full and compared, and any difference aborts the run.
   - the *band*: P1 tickets of the policy for ``service: network`` whose
     response stages (warnings, then the breach) fall due at about
     ``SLAWATCH_BENCH_DUE_RATE`` (default 1,000) per second from the window's
     start on, and past the kill (the restart's backlog).
   - the *filler*: the other tickets, created in the last ten minutes in
     3,600 shapes (second, priority, policy), every stage 20 minutes or more
     ahead.
3. **window** (``SLAWATCH_BENCH_WINDOW_S``, default 150 s; starts at the band's
   origin, or up to 30 s later if the engine was ready late): the engine's RSS
   once it has loaded the clocks and released its timer; 30 % of the band
   tickets due from the window's 60th second get a stop produced to Kafka
   10–60 s before their deadline, so they must not breach (``topics.py``);
   ``slawatch-ingest`` takes single events at ``SLAWATCH_BENCH_INGEST_RATE``
   requests/s (default 500, 0 for none; half new tickets, half updates of
   filler tickets) from an open-loop generator in its own process (``load.py``).
4. **lateness** of every warning and breach due in the window: the broker's
   append time (the SLA topic is created with ``LogAppendTime``) minus the
   crossing instant the event carries; every band stage is checked
   (``figures.py``).
5. **restart**: SIGKILL, 20 s with nothing produced while stages keep falling
   due, then a new engine: the time from its spawn to the first SLA record not
   appended before, and how fast the overdue backlog is appended.

Beside them (``probes.py``): the engine's CPU, the machine's, where the engine's
database sessions were (sampled), its tables' growth, vacuums and the server's
checkpoints, and how often each engine was assigned its partitions (each
assignment reloads every clock). The engine's log (INFO) is kept under
``.data/bench/``.

The default run is sized to finish within about six minutes on a 2-core machine:
seeding a million clocks takes about half a minute, the engine's loading of them
about ten seconds, then the 150 s window, 20 s down, the restart and its backlog.
"""

from bench.scale.run import bench_engine_scale

__all__ = ["bench_engine_scale"]
