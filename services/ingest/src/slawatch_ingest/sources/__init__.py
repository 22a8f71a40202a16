"""Source adapters: one pure normaliser per kind of sending system.

``registry.KINDS`` lists them; each module's docstring says what its
deliveries mean. Shared pieces: ``canonical`` (what a normaliser returns,
event ids), ``config`` (a source's configuration), ``lifecycle`` (canonical
statuses and transitions), ``tickets`` (building the ticket), ``paths``
(JSON pointer and JSONPath), ``instants`` (reading times).
"""
