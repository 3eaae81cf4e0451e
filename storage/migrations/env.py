"""Alembic environment: runs on the connection mailbot hands over in `config.attributes`."""

from alembic import context
from sqlmodel import SQLModel

from mailbot.storage import models  # noqa: F401 - registers the tables on the metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
