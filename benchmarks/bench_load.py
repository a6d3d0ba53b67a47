"""Serving under load (docs/deployment.md): gunicorn (deploy/gunicorn.conf.py, threaded workers) + PostgreSQL +
Redis + a Celery worker, driven over loopback by 1, 8 and 32 clients for 60 s each (``--quick``: 8 s) with a mixed
workload: lists, details, timeline appends, uploads, export creation, approvals with password re-authentication,
analytics and downloads. Each client pauses ``--think`` seconds on average (0.5) between its requests, as a person
or a paced integration does; ``--think 0`` drives the server at saturation, where every figure is queueing.

Printed per level: requests, errors (target: zero at every level), throughput and p50/p95 per operation. The
approve path is split with the ``Server-Timing`` header (``DOSSIER_SERVER_TIMING=1``): the password check
(waiting for a hash slot included), the server's own work other than the hash (``app`` minus ``password``: from
the moment a worker thread has the request) and, as the client sees it, everything else (queueing for a thread
included). The server work's p95 at 32 clients is printed as a ratio to its 1-client p95 (target <= 3), and the
client-side ratio beside it; the 1-client level runs on past its duration until it has measured 30 approvals, so
that the baseline is not the maximum of a handful. The cost of one password check is printed for PBKDF2 (Django's
default) and Argon2id at Dossier's parameters (config/hashers.py), measured in this process side by side.

Run from the repository root: ``python benchmarks/bench_load.py [--quick] [--levels 1,8,32] [--seconds 60]``.
Environment: ``LOAD_BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/dossier_bench_load``; a new
team and template per run, nothing truncated), ``LOAD_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379``: broker
DB 1 on a queue of its own, cache DB 0 under a key prefix of its own), ``LOAD_BENCH_PORT`` (default: a free
port), ``WEB_CONCURRENCY`` / ``WEB_THREADS`` (default: deploy/gunicorn.conf.py's, one process per core with 2
threads), ``WORKER_NICENESS`` (default 10: the worker runs as ``make run-prod`` runs it on one host, below the web
process's priority; 0 runs it beside). Each level also prints how busy the host's CPU was and how much of it the
hypervisor took (steal): on a shared virtual machine the same run can find half of its CPU gone. A report, like
the other benchmarks: always exits 0 (failed requests are listed and the zero-errors verdict says MISS).
``benchmarks/run.py`` runs it with the others (``make bench``, ``make bench-quick``).
"""

from __future__ import annotations

import argparse
import os
import random
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from _data import ROOT

DATABASE_URL = os.environ.get("LOAD_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dossier_bench_load")
REDIS = os.environ.get("LOAD_BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
PASSWORD = "bench-load-signing-password"  # noqa: S105 - throwaway benchmark accounts
SESSIONS = "/api/experiment-console/sessions"
UPLOAD_BYTES = 64 * 1024
TARGET_RATIO = 3.0
# The ratio's baseline, the 1-client p95 of an approval, is taken over at least this many approvals: the level runs
# on past its duration (at most LEVEL_EXTENSION times as long) until it has them. A p95 of the ten or so a minute
# gives is their maximum, one slow outlier.
BASELINE_APPROVALS = 30
LEVEL_EXTENSION = 6
# One client's round: reads dominate, as on a lab's working day; every round signs one export.
CYCLE = (
    "list", "detail", "timeline", "list", "analytics", "detail", "upload", "create_export", "approve",
    "download", "timeline", "detail",
)  # fmt: skip
RUN = f"load-{uuid.uuid4().hex[:8]}"
# The web process's figures as deploy/gunicorn.conf.py computes them from the environment.
GUNICORN = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
WORKER_NICENESS = os.environ.get("WORKER_NICENESS", "10")
WORK = Path(tempfile.mkdtemp(prefix="dossier-bench-load-"))

# The web process, the worker and this process share these (this process seeds the database).
SHARED_ENV = {
    "DATABASE_URL": DATABASE_URL,
    "DJANGO_SETTINGS_MODULE": "_load_settings",
    "DOSSIER_LOAD_QUEUE": RUN,
    "CELERY_BROKER_URL": f"{REDIS}/1",
    "REDIS_URL": f"{REDIS}/0",
    "CACHE_KEY_PREFIX": RUN,
    "SECRET_KEY": "dossier-bench-load-secret-key-for-loopback-runs-only-7c1f3a9e2b",  # noqa: S105
    "DOSSIER_VAR_DIR": str(WORK / "var"),
    "DOSSIER_KEYRING": str(WORK / "var" / "keyring.json"),
    "ARTIFACT_STORAGE_BACKEND": "filesystem",
    "ARTIFACT_ROOT": str(WORK / "artifacts"),
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "DEBUG": "0",
    "DOSSIER_HTTPS": "0",
    "DOSSIER_SERVER_TIMING": "1",
    "LOG_LEVEL": "WARNING",
    "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'benchmarks'}",
}
os.environ.update(SHARED_ENV)

from _django import setup, verdict  # noqa: E402


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Services ---------------------------------------------------------------------------------------------------
@dataclass
class Services:
    base: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def start_services() -> Services:
    import requests

    port = int(os.environ.get("LOAD_BENCH_PORT") or free_port())
    env = {**os.environ, "WEB_CONCURRENCY": str(GUNICORN["workers"]), "WEB_THREADS": str(GUNICORN["threads"])}
    env["WEB_ACCESS_LOG"] = ""
    # The clients keep their connections open between requests, as a proxy in front of gunicorn does; gunicorn's
    # 5 s default would close them under the clients mid-run (a reverse proxy's keep-alive is typically 60-75 s).
    env.setdefault("WEB_KEEPALIVE", "75")
    bin_dir = Path(sys.executable).parent
    web = [str(bin_dir / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}"]
    worker = [str(bin_dir / "celery"), "-A", "config", "worker", "-Q", RUN, "-c", "1", "-n", f"{RUN}@%h"]
    worker = ["nice", "-n", WORKER_NICENESS, *worker]  # as scripts/run_prod.sh starts it
    services = Services(f"http://127.0.0.1:{port}")
    for name, command in (("web", [*web, "config.wsgi"]), ("worker", [*worker, "--without-gossip"])):
        log = (WORK / f"{name}.log").open("ab")
        services.processes.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"{services.base}/accounts/login/", timeout=2)
            return services
        except requests.RequestException:
            if time.monotonic() > deadline or any(p.poll() is not None for p in services.processes):
                services.stop()
                sys.exit(f"the services did not start; see {WORK}/web.log and worker.log")
            time.sleep(0.5)


# --- Seeding ----------------------------------------------------------------------------------------------------
@dataclass
class Account:
    author_token: str
    signer_token: str
    signer_username: str = ""


def seed(clients: int) -> tuple[str, list[Account]]:
    """A team of its own, a one-stage platform template of its own, and per client an author and a signer."""
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from approvals.services.signing_controls import CURRENT_STATEMENT, signer_certify
    from config.errors import Conflict
    from exports.services.signing_keys import signer_for, signing_key_active, signing_key_rotate
    from governance.models import Membership, Role, Team
    from tests.approvals.factories import published_snapshot

    try:  # a database kept from a run with another secret: bundles need a key this secret opens
        signer_for(signing_key_active())
    except Conflict:
        signing_key_rotate()
    team = Team.objects.create(slug=RUN, name=f"Load {RUN}")
    stage = {"name": "Review", "required_role": "reviewer", "sla_hours": 24, "meaning": "Reviewed"}
    published_snapshot(key=RUN, stages=[stage])
    User = get_user_model()
    roles = {key: Role.objects.get(key=key) for key in ("scientist", "reviewer")}

    def user(name: str, role: str) -> str:
        account = User.objects.create(username=f"{RUN}-{name}", first_name=name.title(), last_name="Load")
        account.set_password(PASSWORD)  # Argon2id, as production stores it
        account.save()
        Membership.objects.create(user=account, team=team, role=roles[role])
        if role == "reviewer":  # a signer certifies their electronic signature before signing (docs/part11.md)
            signer_certify(user=account, password=PASSWORD, statement_version=CURRENT_STATEMENT.version)
        return AuthToken.objects.create(user=account)[1]

    accounts = [Account(user(f"author{i}", "scientist"), user(f"signer{i}", "reviewer")) for i in range(clients)]
    for i, account in enumerate(accounts):
        account.signer_username = f"{RUN}-signer{i}"
    return RUN, accounts


# --- Clients ----------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    approve_rest: list[float] = field(default_factory=list)
    approve_hash: list[float] = field(default_factory=list)
    # The server's own work on an approval other than the hash (``app`` minus ``password`` of Server-Timing):
    # what the request costs once a worker thread has it, without the time it queued for one.
    approve_work: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Shares of the host's CPU time during the level: busy (steal included) and stolen by the hypervisor.
    cpu: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # how long the level ran


class Client:
    """One user at a keyboard: an author session and a signer session, with an execution of its own."""

    def __init__(self, base: str, team: str, account: Account, downloads: list[str], rng: random.Random):
        import requests

        self.base, self.team, self.downloads, self.rng = base, team, downloads, rng
        self.signer_username = account.signer_username  # a signing session's first signature names its signer
        self.author, self.signer = requests.Session(), requests.Session()
        self.last_app_ms = 0.0  # Server-Timing "app" of the last approval
        self.author.headers["Authorization"] = f"Token {account.author_token}"
        self.signer.headers["Authorization"] = f"Token {account.signer_token}"
        created = self.author.post(f"{base}{SESSIONS}", json={"title": "Load run", "team": team}, timeout=60)
        if created.status_code != 201:
            sys.exit(f"seeding execution refused: {created.status_code} {created.text[:300]}")
        self.execution = created.json()["id"]
        self.url = f"{base}{SESSIONS}/{self.execution}"
        uploaded = self._upload()
        if uploaded.status_code != 201:
            sys.exit(f"seeding upload refused: {uploaded.status_code} {uploaded.text[:300]}")
        self.file_id = uploaded.json()["id"]
        self.pending: list[tuple[int, int]] = []  # (export, stage) created and not yet signed
        self.sequence = 0

    def _upload(self):
        files = {"file": ("plate.bin", os.urandom(UPLOAD_BYTES), "application/octet-stream")}
        return self.author.post(f"{self.url}/files", files=files, data={"title": "Plate"}, timeout=120)

    def step(self, op: str):
        """Send one operation; returns (response or None when there was nothing to do, password seconds)."""
        if op == "list":
            return self.author.get(f"{self.base}{SESSIONS}", params={"page_size": 20}, timeout=120), 0.0
        if op == "detail":
            return self.author.get(self.url, timeout=120), 0.0
        if op == "timeline":
            self.sequence += 1
            events = [{"event_type": "measurement.recorded", "payload": {"n": self.sequence, "i": i}} for i in range(5)]
            return self.author.post(f"{self.url}/events", json=events, timeout=120), 0.0
        if op == "upload":
            response = self._upload()
            if response.status_code == 201:
                self.file_id = response.json()["id"]
            return response, 0.0
        if op == "create_export":
            body = {"evidence": [{"kind": "file", "id": self.file_id}], "template_key": self.team}
            response = self.author.post(f"{self.url}/exports/narrative", json=body, timeout=120)
            if response.status_code == 201:
                created = response.json()
                self.pending.append((created["id"], created["ladder"]["stages"][0]["id"]))
            return response, 0.0
        if op == "approve":
            return self._approve()
        if op == "analytics":
            return self.signer.get(f"{self.base}/api/governance/analytics", params={"team": self.team}, timeout=120), 0
        if op == "download":
            if not self.downloads:
                return None, 0.0
            return self.author.get(self.rng.choice(self.downloads), timeout=120), 0.0
        raise ValueError(op)

    def _approve(self):
        if not self.pending:
            return None, 0.0
        export_id, stage_id = self.pending.pop(0)
        body = {"decision": "approve", "username": self.signer_username, "password": PASSWORD, "meaning": "Reviewed",
                "expected_stage_id": stage_id}  # fmt: skip
        response = self.signer.post(f"{self.url}/exports/narrative/{export_id}/approve", json=body, timeout=120)
        timing = server_timing(response.headers.get("Server-Timing", ""))
        self.last_app_ms = timing.get("app", 0.0)
        return response, timing.get("password", 0.0) / 1000


def server_timing(header: str) -> dict[str, float]:
    """``password;dur=12.5, app;dur=40.1`` -> {"password": 12.5, "app": 40.1} (milliseconds)."""
    figures = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            figures[name] = float(duration)
    return figures


def cpu_times() -> list[int]:
    """The host's CPU counters (``/proc/stat``: user, nice, system, idle, iowait, irq, softirq, steal), or []."""
    try:
        with open("/proc/stat") as stat:
            return [int(value) for value in stat.readline().split()[1:9]]
    except OSError:
        return []


def run_level(clients: list[Client], seconds: float, think: float, min_approvals: int = 0) -> Outcome:
    """Drive ``clients`` for ``seconds``; then on, up to ``LEVEL_EXTENSION`` times as long, until the level has
    ``min_approvals`` approvals measured (the 1-client level: its p95 is the baseline of the ratio)."""
    outcome, lock = Outcome(), threading.Lock()
    start = threading.Barrier(len(clients))

    def more(deadline: float, limit: float) -> bool:
        now = time.monotonic()
        return now < deadline or (now < limit and len(outcome.approve_work) < min_approvals)

    def drive(client: Client) -> None:
        start.wait()
        began_level = time.monotonic()
        deadline, limit = began_level + seconds, began_level + seconds * LEVEL_EXTENSION
        index = client.rng.randrange(len(CYCLE))  # clients start at different points of the round
        while more(deadline, limit):
            op = CYCLE[index % len(CYCLE)]
            index += 1
            began = time.perf_counter()
            try:
                response, password = client.step(op)
            except Exception as exc:  # noqa: BLE001 - a failed request is a measured error, not a crash
                with lock:
                    outcome.errors[f"{op}: {type(exc).__name__} {str(exc)[:160]}"] += 1
                continue
            elapsed = time.perf_counter() - began
            if response is None:
                continue
            if think:
                time.sleep(client.rng.uniform(0.5, 1.5) * think)  # a person (or a paced script) between calls
            with lock:
                if response.status_code >= 300:
                    outcome.errors[f"{op}: {response.status_code} {response.text[:120]}"] += 1
                    continue
                outcome.times[op].append(elapsed * 1000)
                if op == "approve":
                    outcome.approve_hash.append(password * 1000)
                    outcome.approve_rest.append((elapsed - password) * 1000)
                    outcome.approve_work.append(client.last_app_ms - password * 1000)

    threads = [threading.Thread(target=drive, args=(client,)) for client in clients]
    before, began = cpu_times(), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after, outcome.seconds = cpu_times(), time.monotonic() - began
    if before and after:
        spent = [b - a for a, b in zip(before, after, strict=True)]
        outcome.cpu = {"busy": 1 - (spent[3] + spent[4]) / max(sum(spent), 1), "steal": spent[7] / max(sum(spent), 1)}
    return outcome


def prime_downloads(clients: list[Client], want: int, timeout: float = 180) -> list[str]:
    """Sign a few exports before measuring, and wait for the worker to package them: the downloads' targets."""
    urls: list[str] = []
    for client in clients[:want]:
        client.step("create_export")[0].raise_for_status()
        urls.append(f"{client.url}/exports/narrative/{client.pending[0][0]}/artifact")
        client.step("approve")[0].raise_for_status()
    deadline = time.monotonic() + timeout
    probe = clients[0].author
    while time.monotonic() < deadline:
        if all(probe.get(url, timeout=60).status_code == 200 for url in urls):
            return urls
        time.sleep(1)
    sys.exit("the worker did not package the first exports in time; see worker.log")


# --- Report -----------------------------------------------------------------------------------------------------
def hash_costs(rounds: int = 5) -> dict[str, float]:
    """Milliseconds per password check, each hasher measured in this process, interleaved."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from config.hashers import Argon2idPasswordHasher

    hashers = {
        "PBKDF2-SHA256 (Django's default)": PBKDF2PasswordHasher(),
        "Argon2id m=19MiB t=2 p=1 (Dossier)": Argon2idPasswordHasher(),
    }
    encoded = {name: hasher.encode(PASSWORD, hasher.salt()) for name, hasher in hashers.items()}
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, hasher in hashers.items():
            began = time.perf_counter()
            assert hasher.verify(PASSWORD, encoded[name])
            best[name] = min(best.get(name, float("inf")), (time.perf_counter() - began) * 1000)
    return best


def report(level: int, outcome: Outcome) -> None:
    seconds = outcome.seconds
    total = sum(len(v) for v in outcome.times.values())
    errors = sum(outcome.errors.values())
    print(f"\n{level} client{'s' if level > 1 else ''}: {total} requests in {seconds:.0f} s "
          f"({total / seconds:.1f}/s), {errors} errors")  # fmt: skip
    if outcome.cpu:
        print(f"  host CPU busy {outcome.cpu['busy']:.0%}, of it stolen by the hypervisor {outcome.cpu['steal']:.0%}")
    print(f"  {'operation':<26}{'count':>7}{'p50 ms':>10}{'p95 ms':>10}")
    for op in dict.fromkeys(CYCLE):
        values = outcome.times.get(op, [])
        print(f"  {op:<26}{len(values):>7}{percentile(values, 50):>10.1f}{percentile(values, 95):>10.1f}")
    for label, values in (
        ("approve: password check", outcome.approve_hash),
        ("approve: everything else", outcome.approve_rest),
        ("approve: server work", outcome.approve_work),
    ):
        print(f"  {label:<26}{len(values):>7}{percentile(values, 50):>10.1f}{percentile(values, 95):>10.1f}")
    for message, count in sorted(outcome.errors.items()):
        print(f"  ERROR x{count}: {message}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--think", type=float, default=0.5, help="mean pause between a client's requests (0: none)")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    seconds = args.seconds or (8.0 if args.quick else 60.0)
    (WORK / "var").mkdir(parents=True, exist_ok=True)
    setup(DATABASE_URL)
    from django.conf import settings

    from exports.crypto import generate_local_document, keyring_document_write

    keyring_document_write(SHARED_ENV["DOSSIER_KEYRING"], generate_local_document())  # one keyring for all

    team, accounts = seed(max(levels))
    services = start_services()
    try:
        rng = random.Random(13)  # noqa: S311 - workload shuffling
        clients = [Client(services.base, team, account, [], random.Random(rng.random())) for account in accounts]  # noqa: S311
        downloads = prime_downloads(clients, want=3)
        for client in clients:
            client.downloads = downloads
        workers, threads = GUNICORN["workers"], GUNICORN["threads"]
        slots = os.environ["DOSSIER_WEB_WORK_SLOTS"]
        print(f"gunicorn gthread {workers} workers x {threads} threads ({slots} working at once per worker), "
              f"1 Celery worker (niceness "
              f"{WORKER_NICENESS}), PostgreSQL, Redis; "
              f"hasher {settings.PASSWORD_HASHERS[0].rsplit('.', 1)[1]}; {seconds:.0f} s per level; "
              f"think time {args.think:g} s (x0.5-1.5) between a client's requests")  # fmt: skip
        outcomes = {}
        for level in levels:
            baseline = BASELINE_APPROVALS if level == 1 else 0
            outcomes[level] = run_level(clients[:level], seconds, args.think, min_approvals=baseline)
            report(level, outcomes[level])
    finally:
        services.stop()
    print("\npassword check, one verification in this process (best of 5):")
    for name, ms in hash_costs().items():
        print(f"  {name:<34}{ms:>8.1f} ms")
    failed = sum(sum(o.errors.values()) for o in outcomes.values())
    print(f"\n  {'PASS' if not failed else 'MISS'}: zero errors at every level ({failed} in all)")
    if 1 in outcomes and max(levels) > 1:
        top = max(levels)
        work = percentile(outcomes[top].approve_work, 95) / percentile(outcomes[1].approve_work, 95)
        print(f"  {verdict(work, TARGET_RATIO, higher_is_better=False)}: approve, the server's work without the "
              f"hash, p95 at {top} clients / p95 at 1 client = {work:.2f} (target <= {TARGET_RATIO:.0f})")  # fmt: skip
        seen = percentile(outcomes[top].approve_rest, 95) / percentile(outcomes[1].approve_rest, 95)
        print(f"  (as the client sees it, queueing for a worker thread included: {seen:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
