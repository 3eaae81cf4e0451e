"""Alembic environment: runs on the connection mailbot hands over in `config.attributes`."""

import importlib
import pkgutil

from alembic import context
from sqlmodel import SQLModel

import mailbot.storage

# Every table module registers itself on the metadata: models.py and models_<area>.py.
for module in pkgutil.iter_modules(mailbot.storage.__path__):
    if module.name == "models" or module.name.startswith("models_"):
        importlib.import_module(f"mailbot.storage.{module.name}")

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
