"""Test-only helpers: real servers and process runners the tests share."""
