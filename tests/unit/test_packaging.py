"""What pyproject.toml ships exists: every package-data pattern matches at least one file."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_data_pattern_matches_a_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    where = config["tool"]["setuptools"]["packages"]["find"]["where"]
    unmatched = [
        f"{package}: {pattern}"
        for package, patterns in config["tool"]["setuptools"]["package-data"].items()
        for pattern in patterns
        if not any(next((ROOT / w / package.replace(".", "/")).glob(pattern), None) for w in where)
    ]
    assert unmatched == []
