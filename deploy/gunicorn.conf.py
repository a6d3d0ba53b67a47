"""gunicorn for Dossier's web process (docs/deployment.md): `gunicorn -c deploy/gunicorn.conf.py config.wsgi`.

Threaded workers (``gthread``): a request waiting on PostgreSQL, storage or a password hash holds one thread,
never a whole worker, so a burst of sign-ins and signatures no longer queues every other request behind them.
Password hashes themselves are bounded per process (config/passwords.py): at most ``cores // workers`` hash at
once on a host, the others wait briefly or are answered 503 ``busy``.

Few threads, and one request working at a time per core, on purpose: a Dossier request is mostly Python work
(the ORM, serializers, hashing) that holds the interpreter lock, and its transactions hold row locks while it
works, the audit-chain head among them at commit. Two requests working at once in one process only take turns on
its interpreter, each waiting after every database answer for the other to yield it, so both take longer while
holding their locks. So each worker has two threads but ``DOSSIER_WEB_WORK_SLOTS`` (the host's cores divided by
the workers: one) work slots (config/middleware.py): one request runs application code while the other thread
accepts, reads headers, streams a download or waits for an upload's body or a hash slot. Requests beyond that
wait in the worker's queue, where waiting costs no CPU and holds no lock (docs/deployment.md, "Under load", has
the figures).

Every figure can be set in the environment: ``WEB_CONCURRENCY`` (worker processes, default one per core, at least
2), ``WEB_THREADS`` (threads per worker, default 2), ``DOSSIER_WEB_WORK_SLOTS`` (requests working at once per
worker, default the host's cores divided by the workers, at least 1), ``WEB_BIND`` (default 127.0.0.1:8000),
``WEB_TIMEOUT`` (a worker silent this long is killed and replaced, default 60 s; uploads stream, so a large one does
not trip it), ``WEB_MAX_REQUESTS`` (a worker is recycled after this many requests, plus up to 10 % jitter so they do
not all restart at once; default 2000, 0 never), ``WEB_ACCESS_LOG`` (``-`` for stdout, the default, or a path;
empty turns it off).
"""

import multiprocessing
import os

_cores = multiprocessing.cpu_count()

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, _cores))
# config/passwords.py divides the host's cores between the workers' hash pools by this variable.
os.environ["WEB_CONCURRENCY"] = str(workers)
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "2"))
# config/middleware.py: requests running application code at once in one worker; the host's cores between workers.
os.environ.setdefault("DOSSIER_WEB_WORK_SLOTS", str(max(1, _cores // workers)))
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("WEB_KEEPALIVE", "5"))
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
# Request bodies are spooled to disk by Django, not held by gunicorn; these bound what a client can make it buffer.
limit_request_line = 8190
limit_request_fields = 100
worker_tmp_dir = os.environ.get("WEB_WORKER_TMP_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)  # noqa: S108

accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Client, request line, status, bytes, duration in ms and the request id (config/logs.py) to match app logs.
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
forwarded_allow_ips = os.environ.get("DOSSIER_TRUSTED_PROXIES", "127.0.0.1")
proc_name = "dossier-web"
# No gunicornc control socket: nothing here uses it, and two servers on one host would share its default path.
control_socket_disable = True
