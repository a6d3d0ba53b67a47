#!/usr/bin/env python
"""Check that the API does what its OpenAPI schema says, with schemathesis against a live server.

    .venv/bin/python scripts/schema_check.py [--profile quick|long] [--port 8150] [--role demo-approver ...]

What it does (docs/api-schema.md):
1. Builds a database of its own (``<DATABASE_URL's name>_schemacheck``, or a SQLite file under
   ``var/schema-check/`` when DATABASE_URL is not PostgreSQL), migrates it and runs ``seed_demo``.
2. Starts gunicorn on it (``DOSSIER_HTTPS=0``, tasks run in-process), signs every demo role in once with
   ``POST /api/auth/token`` (two tokens each: one for the run, one that ``POST /api/auth/logout`` may revoke),
   reads the ids each role can see (executions, exports in each state, stages, templates, assignments,
   baselines, a signed download token) and stops the server.
3. For each role: copies the seeded database afresh (so one role's writes never change what the next role
   sees), starts the server on the copy and runs ``schemathesis run --checks all`` authenticated as that role,
   with those ids in the path parameters.

Progress is printed as it goes and a summary at the end. Exit codes: 0 every role passed every check,
1 schemathesis reported failures, 2 setup error (database, server, sign-in or schemathesis could not start).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
ROLES = ("demo-scientist", "demo-reviewer", "demo-approver", "demo-compliance", "demo-operator", "demo-admin")
PROFILES = {
    # The derandomized pass of `make test` (under 3 minutes on two cores for the six roles): explicit examples
    # and fuzzing, positive and negative, 5 cases per operation.
    "quick": ["--generation-deterministic", "--max-examples", "4", "--phases", "examples,fuzzing"],
    # Adds the coverage phase (boundary and near-boundary values of every parameter and field), still
    # derandomized: what to run before changing the schema.
    "coverage": ["--generation-deterministic", "--max-examples", "5", "--phases", "examples,coverage,fuzzing"],
    # The long pass: random data, more examples and the stateful phase (links between operations).
    "long": ["--max-examples", "60", "--phases", "examples,coverage,fuzzing,stateful"],
}
EXIT_CLEAN, EXIT_FAILURES, EXIT_SETUP = 0, 1, 2
PRINT_LOCK = threading.Lock()


class SetupError(Exception):
    """Anything that keeps the check from running: reported as exit code 2."""


STARTED = time.monotonic()


def say(message: str) -> None:
    with PRINT_LOCK:
        print(f"[schema-check {time.monotonic() - STARTED:4.0f}s] {message}", flush=True)


# --- Database -------------------------------------------------------------------------------------------------


@dataclass
class Database:
    """The seeded database and a fresh copy of it per role (PostgreSQL ``TEMPLATE`` or a SQLite file copy)."""

    base_url: str
    workdir: Path

    @property
    def postgres(self) -> bool:
        return self.base_url.startswith(("postgres://", "postgresql://"))

    def _pg(self, name: str) -> str:
        parts = urllib.parse.urlsplit(self.base_url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    @property
    def seed_name(self) -> str:
        base = urllib.parse.urlsplit(self.base_url).path.lstrip("/") or "dossier"
        return f"{base}_schemacheck"

    def url(self, copy: str | None = None) -> str:
        if self.postgres:
            return self._pg(self.seed_name if copy is None else f"{self.seed_name}_{copy}")
        name = "seed" if copy is None else copy
        return f"sqlite:///{self.workdir / f'{name}.sqlite3'}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self._pg("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def recreate_seed(self) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.seed_name}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{self.seed_name}"')
        else:
            (self.workdir / "seed.sqlite3").unlink(missing_ok=True)

    def copy(self, name: str) -> str:
        if self.postgres:
            target = f"{self.seed_name}_{name}"
            self._admin(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
            self._admin(f'CREATE DATABASE "{target}" TEMPLATE "{self.seed_name}"')
        else:
            shutil.copyfile(self.workdir / "seed.sqlite3", self.workdir / f"{name}.sqlite3")
        return self.url(name)

    def drop(self, name: str) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.seed_name}_{name}" WITH (FORCE)')
        else:
            (self.workdir / f"{name}.sqlite3").unlink(missing_ok=True)


# --- Server ---------------------------------------------------------------------------------------------------


def server_env(database_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "REDIS_", "CACHE_"))}
    env.update(
        DATABASE_URL=database_url,
        DOSSIER_HTTPS="0",
        DEBUG="0",
        DJANGO_SETTINGS_MODULE="config.settings",
        CELERY_TASK_ALWAYS_EAGER="1",  # packaging runs in the request; no worker to start
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(database_url: str, *args: str) -> None:
    result = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=server_env(database_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SetupError(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


class Server:
    def __init__(self, *, database_url: str, port: int, log: Path):
        self.database_url, self.port, self.log = database_url, port, log
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(  # noqa: S603
            [
                str(VENV_BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--timeout",
                "120",
            ],
            cwd=ROOT,
            env=server_env(self.database_url),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f"the server exited with {self.process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/exports/signing-keys", timeout=2):  # noqa: S310
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise SetupError(f"the server did not answer on port {self.port} within 60 s; see {self.log}")

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# --- Sign-in and ids ------------------------------------------------------------------------------------------


def call(base: str, method: str, path: str, *, token: str | None = None, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def token_for(base: str, username: str, password: str) -> str:
    status, body = call(base, "POST", "/api/auth/token", body={"username": username, "password": password})
    if status != 200:
        raise SetupError(f"{username} could not sign in (HTTP {status}); is DEMO_PASSWORD right?")
    return body["token"]


def results(base: str, path: str, token: str) -> list[dict]:
    status, body = call(base, "GET", f"{path}{'&' if '?' in path else '?'}page_size=500", token=token)
    return body["results"] if status == 200 else []


@dataclass
class RoleIds:
    """Path parameters for one role: ``default`` for every operation, ``by_path`` where one export state fits
    better (an artifact needs a packaged export, signing needs one awaiting approval)."""

    default: dict[str, object] = field(default_factory=dict)
    by_path: dict[str, dict[str, object]] = field(default_factory=dict)


def ids_for(base: str, token: str) -> RoleIds:
    """The ids this role can see, chosen so that the deep operations are reached."""
    ids = RoleIds()
    executions = results(base, "/api/experiment-console/sessions", token)
    exports = results(base, "/api/governance/exports", token)  # operators' view; others list per execution
    if not exports:
        for execution in executions:
            exports += results(base, f"/api/experiment-console/sessions/{execution['id']}/exports/narrative", token)
    by_status: dict[str, dict] = {}
    for export in exports:
        by_status.setdefault(export["status"], export)
    awaiting = by_status.get("awaiting_approval") or (exports[0] if exports else None)
    if awaiting:
        ids.default.update(execution_id=awaiting["execution_id"], export_id=awaiting["id"])
        stages = (awaiting.get("ladder") or {}).get("stages") or []
        active = next((stage for stage in stages if stage["status"] == "in_progress"), stages[0] if stages else None)
        if active:
            ids.default["stage_id"] = active["id"]
    elif executions:
        ids.default["execution_id"] = executions[0]["id"]
    packaged = by_status.get("packaged")
    if packaged:
        where = {"execution_id": packaged["execution_id"], "export_id": packaged["id"]}
        ids.by_path["/artifact"] = where
        path = f"/api/experiment-console/sessions/{where['execution_id']}/exports/narrative/{where['export_id']}"
        status, link = call(base, "GET", f"{path}/artifact/link", token=token)
        if status == 200:
            ids.default["token"] = link["url"].rstrip("/").rsplit("/", 1)[-1]
    approved = by_status.get("approved")
    if approved:
        ids.by_path["/api/governance/exports/{export_id}/queue"] = {"export_id": approved["id"]}
    templates = results(base, "/api/governance/templates?include_all=true", token)
    if templates:
        draft = next((template for template in templates if template["status"] == "draft"), templates[0])
        ids.default["template_id"] = draft["id"]
        for template in templates:
            assignments = results(base, f"/api/governance/templates/{template['id']}/assignments", token)
            if assignments:
                ids.default["assignment_id"] = assignments[0]["id"]
                break
    baselines = results(base, "/api/governance/baselines", token)
    if baselines:
        pending = next((row for row in baselines if row["status"] == "submitted"), baselines[0])
        ids.default["baseline_id"] = pending["id"]
    return ids


# --- schemathesis ---------------------------------------------------------------------------------------------


def pinned_schema(schema: dict, ids: RoleIds) -> dict:
    """The served schema with each path parameter narrowed to the one real id this role uses there (a
    single-value ``enum``): positive cases reach the object, negative ones get any other value (a 404)."""
    for path, operations in schema["paths"].items():
        values = dict(ids.default)
        for fragment, override in ids.by_path.items():
            if fragment in path:
                values.update(override)
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in values:
                    parameter["schema"] = {**parameter["schema"], "enum": [values[parameter["name"]]]}
    return schema


SIGNING_PATHS = ("/approve$", "/audit-reviews/[^/]+/complete$")


def write_config(path: Path, *, token: str, logout_token: str) -> None:
    # Signing out revokes the token the request carries: it gets one of its own so the run keeps its sign-in.
    # The signature components (docs/part11.md): whether a signature needs the username besides the password
    # depends on the signing session, not on the body, and the Part 11 contract answers that case 400
    # signature_components_required, so a positive case without the username may meet it (docs/api-schema.md).
    signing = "".join(
        "[[operations]]\n"
        f'include-path-regex = "{pattern}"\n'
        "[operations.checks.positive_data_acceptance]\n"
        'expected-statuses = ["2XX", "400", "401", "403", "404", "409", "429"]\n\n'
        for pattern in SIGNING_PATHS
    )
    path.write_text(
        # Text the API refuses by its text policy (docs/text-policy.md): NUL and lone surrogates, which no UTF-8
        # JSON text can carry as characters, are 400 invalid_text everywhere (tests/test_bad_input.py).
        "[generation]\n"
        "allow-x00 = false\n"
        'codec = "utf-8"\n\n'
        # Error feedback reads the paths in our 400 bodies (error.details.fields...) as request paths and adds
        # them to the body as an `error` property while still counting the case schema-valid: a false positive
        # (docs/api-schema.md, "Known false positives").
        "[phases.fuzzing.error-feedback]\n"
        "enabled = false\n\n"
        "[headers]\n"
        f'Authorization = "Token {token}"\n\n'
        f"{signing}"
        "[[operations]]\n"
        'include-path = "/api/auth/logout"\n'
        "[operations.headers]\n"
        f'Authorization = "Token {logout_token}"\n'
    )


def failures_in(junit: Path) -> list[str]:
    if not junit.exists():
        return []
    found = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own report
        for problem in [*case.iter("failure"), *case.iter("error")]:
            first = (problem.get("message") or problem.text or "").strip().splitlines()
            found.append(f"{case.get('name')}: {first[0] if first else problem.tag}")
    return found


def run_role(
    *,
    role: str,
    server: Server,
    config: Path,
    schema: Path,
    profile: list[str],
    report_dir: Path,
    extra: list[str],
    output: Path | None,
) -> tuple[int, list[str]]:
    junit = report_dir / f"{role}.xml"
    command = [
        str(VENV_BIN / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        str(schema),
        "--url",
        server.base,
        "--checks",
        "all",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
        "--no-color",
        *profile,
        *extra,
    ]
    if output is None:
        result = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603
    else:
        with output.open("wb") as handle:
            result = subprocess.run(command, cwd=ROOT, check=False, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603
        with PRINT_LOCK:
            sys.stdout.write(output.read_text(errors="replace"))
            sys.stdout.flush()
    if result.returncode not in (0, 1):
        raise SetupError(f"schemathesis exited with {result.returncode} for {role}")
    return result.returncode, failures_in(junit)


# --- Main -----------------------------------------------------------------------------------------------------


def _stop(signum, frame):
    raise SystemExit(EXIT_SETUP)  # unwinds through the servers' and databases' clean-up


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SCHEMA_CHECK_PORT", "8150")))
    parser.add_argument("--role", action="append", choices=ROLES, help="Only these roles (repeatable).")
    parser.add_argument("--keep", action="store_true", help="Keep the databases and reports of the run.")
    parser.add_argument(
        "--jobs", type=int, default=2, help="Roles checked at once, each on its own copy and port (default 2)."
    )
    parser.add_argument("schemathesis_args", nargs="*", help="Passed on to `schemathesis run` (after --).")
    args = parser.parse_args(argv)
    password = os.environ.get("DEMO_PASSWORD", "demo-pass")
    roles = args.role or list(ROLES)
    workdir = ROOT / "var" / "schema-check"
    workdir.mkdir(parents=True, exist_ok=True)
    report_dir = Path(tempfile.mkdtemp(prefix="reports-", dir=workdir))
    database = Database(os.environ.get("DATABASE_URL", ""), workdir)
    log = workdir / "server.log"
    log.write_bytes(b"")
    started = time.monotonic()
    outcome: dict[str, tuple[int, list[str]]] = {}
    try:
        say(f"seeding {database.url()} (migrate, seed_demo)")
        database.recreate_seed()
        manage(database.url(), "migrate", "--noinput", "-v0")
        manage(database.url(), "seed_demo")
        say("signing in every role once and reading the ids each one sees")
        plans = {}
        with Server(database_url=database.url(), port=args.port, log=log) as server:
            status, served = call(server.base, "GET", "/api/schema/?format=json")
            if status != 200:
                raise SetupError(f"the schema is not served (HTTP {status})")
            for role in roles:
                token = token_for(server.base, role, password)
                logout_token = token_for(server.base, role, password)
                plans[role] = (token, logout_token, ids_for(server.base, token))
        urls = {}
        for role in roles:
            token, logout_token, ids = plans[role]
            shown = {name: value for name, value in ids.default.items() if name != "token"}
            say(f"{role}: ids {shown}, by path {ids.by_path}")
            write_config(workdir / f"{role}.toml", token=token, logout_token=logout_token)
            (workdir / f"{role}.openapi.json").write_text(
                json.dumps(pinned_schema(json.loads(json.dumps(served)), ids))
            )
            urls[role] = database.copy(role.removeprefix("demo-"))

        ports: queue.Queue[int] = queue.Queue()
        for slot in range(args.jobs):
            ports.put(args.port + slot)

        def check(role: str) -> tuple[int, list[str]]:
            port = ports.get()  # a port no other role's server holds now
            say(f"{role}: running schemathesis (port {port})")
            try:
                with Server(database_url=urls[role], port=port, log=workdir / f"server-{role}.log") as server:
                    return run_role(
                        role=role,
                        server=server,
                        config=workdir / f"{role}.toml",
                        schema=workdir / f"{role}.openapi.json",
                        profile=PROFILES[args.profile],
                        report_dir=report_dir,
                        extra=args.schemathesis_args,
                        output=workdir / f"{role}.out" if args.jobs > 1 else None,
                    )
            finally:
                ports.put(port)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {role: pool.submit(check, role) for role in roles}
            for role, future in futures.items():
                outcome[role] = future.result()
                say(f"{role}: {'passed' if outcome[role][0] == 0 else 'FAILED'} ({time.monotonic() - started:.0f} s)")
        if not args.keep:
            for role in roles:
                database.drop(role.removeprefix("demo-"))
    except SetupError as exc:
        say(f"setup error: {exc}")
        return EXIT_SETUP
    except Exception as exc:  # a broken database or a missing tool is a setup problem, not a finding
        say(f"setup error: {type(exc).__name__}: {exc}")
        return EXIT_SETUP
    finally:
        if not args.keep:
            shutil.rmtree(report_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print("\n=== schema check summary ===")
    failed = False
    for role, (code, problems) in outcome.items():
        verdict = "ok" if code == 0 else f"{len(problems) or 'some'} failure(s)"
        print(f"  {role:<16} {verdict}")
        for problem in problems:
            print(f"      - {problem}")
        failed = failed or code != 0
    print(f"  {len(outcome)} role(s), profile {args.profile}, {elapsed:.0f} s")
    return EXIT_FAILURES if failed else EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
