"""What every Celery worker process does besides running tasks: look for packaging attempts whose worker is gone.

At ``worker_ready`` a daemon thread starts that calls ``packaging_takeover_stale`` at once and then every
``DOSSIER_PACKAGING_TAKEOVER_EVERY_SECONDS``, idle or busy, so a surviving worker notices a dead one within seconds
of its lease lapsing, with or without beat (docs/architecture.md, "Packaging leases").
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


class TakeoverTimer:
    def __init__(self, every: float) -> None:
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="packaging-takeover", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _loop(self) -> None:
        while True:
            self._round()
            if self._stopped.wait(self._every):
                return

    def _round(self) -> None:
        from exports.services.packaging import packaging_takeover_stale

        try:
            taken = packaging_takeover_stale()
            if taken:
                logger.warning("took over packaging of exports %s from lost workers", taken)
        except Exception:  # the next round tries again; the timer must outlive a database or broker outage
            logger.exception("looking for lost packaging workers failed")
        finally:
            connections.close_all()  # this thread's own connection; a new one next round


_timer: TakeoverTimer | None = None


@worker_ready.connect
def _start_takeover_timer(**_kwargs) -> None:
    global _timer
    every = settings.DOSSIER_PACKAGING_TAKEOVER_EVERY_SECONDS
    if every > 0 and _timer is None:
        _timer = TakeoverTimer(every)
        _timer.start()


@worker_shutdown.connect
def _stop_takeover_timer(**_kwargs) -> None:
    if _timer is not None:
        _timer.stop()
