"""Parse a Prometheus text-format scrape into {metric name: [sample values]} (tests only)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by its exposed name (``..._total``, ``..._count``, ...), with its labels
    (the exporter's ``otel_scope_*`` labels left out)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if not k.startswith("otel_scope_")}
            out.setdefault(sample.name, []).append((labels, float(sample.value)))
    return out


def prometheus_name(otel_name: str, unit: str, kind: str) -> str:
    """The name the OpenTelemetry Prometheus exporter gives an instrument (the sample to read:
    ``_total`` for counters, ``_count`` for histograms)."""
    base = otel_name.replace(".", "_")
    suffix = {"s": "seconds", "By": "bytes"}.get(unit, "")
    if suffix and not base.endswith(suffix):
        base = f"{base}_{suffix}"
    return base + {"counter": "_total", "histogram": "_count"}.get(kind, "")
