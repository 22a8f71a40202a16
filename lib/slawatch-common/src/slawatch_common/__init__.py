"""Plumbing shared by the slawatch services: event contracts, Kafka, database, metrics.

Services import from here and never from each other.
"""
