"""Imports every model module so that ``Base.metadata`` knows all tables (Alembic, tests)."""

from app.accounts import models as accounts_models  # noqa: F401
from app.core.database import Base
from app.core.indexes import attach_to_metadata
from app.events import models as events_models  # noqa: F401
from app.faces import models as faces_models  # noqa: F401
from app.mail import models as mail_models  # noqa: F401
from app.notices import models as notices_models  # noqa: F401
from app.photos import models as photos_models  # noqa: F401
from app.selfies import models as selfies_models  # noqa: F401

metadata = Base.metadata
attach_to_metadata(metadata)
