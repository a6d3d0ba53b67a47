"""Settings of the processes bench_load.py starts: production settings with the run's own Celery queue, so its web
process and worker never exchange tasks with anything else on the same Redis."""

import os

from config.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["DOSSIER_LOAD_QUEUE"]
