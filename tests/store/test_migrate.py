from sqlalchemy import Engine, inspect, select

from tollway.store.db import read_config_version
from tollway.store.migrate import upgrade_to_head
from tollway.store.tables import groups, metadata


def test_migration_creates_every_table_and_seeds(engine: Engine) -> None:
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert read_config_version(conn) == 1
        assert conn.execute(select(groups.c.name)).scalars().all() == ["default"]


def test_migration_is_idempotent(engine: Engine) -> None:
    upgrade_to_head(engine)
    with engine.connect() as conn:
        assert conn.execute(select(groups.c.name)).scalars().all() == ["default"]
