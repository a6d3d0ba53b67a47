"""Settings for the test suite: the production settings, served over plain HTTP.

The test client and the live servers of the browser and worker tests speak http://, so the HTTPS redirect and
secure-only cookies that production gets by default (config/settings.py) are off here. Set before the import so
every value derived from it follows; subprocesses started by tests inherit it.
"""

import os

os.environ.setdefault("DOSSIER_HTTPS", "0")

from config.settings import *  # noqa: E402, F403
