"""Settings for the processes of the multi-host drill (tests/integration/test_multi_host.py): the test settings
(plain HTTP) with tasks sent to the drill's own queue, so the web process's dispatch reaches only the drill's
workers."""

import os

from tests.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ.get("DOSSIER_DRILL_QUEUE", "celery")
