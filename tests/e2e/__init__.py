"""End-to-end tests: the services as OS processes against the real broker, database and sinks."""
