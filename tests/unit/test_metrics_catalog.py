"""Every instrument is declared once, named by convention, and listed in the README table."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures.metrics_catalog import all_instruments

README = Path(__file__).resolve().parents[2] / "README.md"


def test_names_are_unique_and_dotted() -> None:
    names = [d.name for d in all_instruments()]
    assert len(names) == len(set(names)), names
    for name in names:
        assert re.fullmatch(r"(flywheel|messaging|http)(\.[a-z_]+)+", name), name


def test_readme_table_lists_every_instrument_with_its_unit() -> None:
    rows = re.findall(r"^\| `([a-z_.]+)` \| (\w+) \| `([^`]+)` \|", README.read_text(), re.M)
    listed = {name: (kind, unit) for name, kind, unit in rows}
    declared = {d.name: (d.kind, d.unit) for d in all_instruments()}
    assert listed == declared
