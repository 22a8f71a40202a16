"""Reading a Prometheus text exposition in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric(text: str, name: str, **labels: str) -> float:
    """The summed value of the samples ``name`` whose labels include ``labels``.

    Raises ``KeyError`` when no such series is exposed at all, so a test also
    proves that the series exists.
    """
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    if not values:
        raise KeyError(f"{name}{labels} not exposed")
    return float(sum(values))
