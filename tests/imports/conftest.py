"""The source database of the import tests: one per test process, rows replaced per test."""

from __future__ import annotations

import pytest

from tests.conftest import create_database, drop_database
from tests.imports.supabase_db import SourceDatabase, population


@pytest.fixture(scope="session")
def source_database():
    name, url = create_database("hearth_supabase_src")
    source = SourceDatabase(url)
    source.create_schema()
    yield source
    source.close()
    drop_database(name)


@pytest.fixture
def source_users():
    return population()


@pytest.fixture
def source(database, source_database, source_users):
    source_database.load(source_users)
    return source_database
