"""Settings for the test suite: the same env-driven file, with tasks run inline.

django-q2 copies ``Q_CLUSTER`` when it is first imported, so ``override_settings`` cannot
switch it: end-to-end tests start a real ``qcluster`` with ``config.settings`` instead.
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import DATABASES, Q_CLUSTER, VAR_DIR

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# One test database per test process, so concurrent runs never share one. On SQLite it is
# a file, not :memory:, so a real qcluster subprocess can open the same database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test_db_{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_dossier_{os.getpid()}"}
