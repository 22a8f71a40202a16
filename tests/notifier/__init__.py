"""Tests of the notifier service: pure units, real servers, and the service in-process."""
