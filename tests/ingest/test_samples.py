"""The copied samples are the reference payloads, byte for byte."""

from __future__ import annotations

import pytest

from ingest.payloads import PAYLOADS, REFERENCE


def test_samples_are_the_reference_payloads() -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"no reference payloads at {REFERENCE}")
    names = sorted(path.name for path in REFERENCE.iterdir() if path.is_file())
    assert names == sorted(path.name for path in PAYLOADS.iterdir())
    for name in names:
        assert (PAYLOADS / name).read_bytes() == (REFERENCE / name).read_bytes(), name
