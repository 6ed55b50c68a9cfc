"""PostgreSQL access: pool, migrations, repositories."""

from dspy_flywheel.store.migrate import apply_migrations, migrate
from dspy_flywheel.store.pool import create_pool

__all__ = ["apply_migrations", "create_pool", "migrate"]
