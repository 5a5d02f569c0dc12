"""The mapping file of a Supabase import: ``parse_mapping(text)`` → ``Mapping``, whose ``steps()`` the runner walks.

A mapping file (TOML, described in docs/import.md) names, for each app table of the source, its
Hearth target and the rule of each column (``models/imports/mapping_rules.py``), and for each
Storage bucket the purpose its files have in Hearth (``[buckets]``). ``parse_mapping`` validates
all of it before anything is read or written and raises ``MappingError`` whose ``problems`` give
every problem with its TOML path.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from models.imports.mapping_rules import MappingError, Problem, TableMapping, parse_tables
from models.imports.mapping_steps import ordered_steps
from models.imports.steps import Step
from models.imports.storage_steps import bucket_problems, storage_steps


@dataclass(frozen=True)
class Mapping:
    tables: dict[str, TableMapping]
    buckets: dict[str, str] = field(default_factory=dict)

    def steps(self) -> list[Step]:
        """Storage first when the mapping names buckets (files must exist before the rows that show them),
        then the app tables in reference order. The ``auth`` steps run before all of these."""
        files = storage_steps(self.buckets) if self.buckets else []
        return [*files, *ordered_steps(self.tables)]


def parse_mapping(text: str) -> Mapping:
    """The mapping in ``text``; ``MappingError`` listing every problem with its TOML path."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError([Problem("", f"not valid TOML: {exc}")]) from None
    buckets = document.pop("buckets", {})
    problems = [Problem(path, message) for path, message in bucket_problems(buckets)]
    try:
        tables = parse_tables(document)
    except MappingError as exc:
        raise MappingError(problems + exc.problems) from None
    if problems:
        raise MappingError(problems)
    return Mapping(tables, dict(buckets))


__all__ = ["Mapping", "MappingError", "parse_mapping"]
