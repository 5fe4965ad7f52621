"""Imports every model module so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.accounts import models as accounts_models  # noqa: F401
from app.core.database import Base
from app.events import models as events_models  # noqa: F401

metadata = Base.metadata
