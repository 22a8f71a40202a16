"""slawatch SLA engine: keeps every SLA clock's deadline state and emits warnings and breaches."""
