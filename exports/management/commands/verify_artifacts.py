"""verify_artifacts [--sample N] [--deep] [--record-missing]: the fixity check of stored objects.

Re-hashes every stored artifact and evidence file (or the ``N`` checked longest ago) against the sha256 of its
bytes as stored, recorded when it was written; ``--deep`` also decrypts it and checks the plaintext's sha256;
``--record-missing`` records the stored digest of objects stored before it existed, once their plaintext checked
out. Scheduled daily (``DOSSIER_SCHEDULES``). Exit codes: 0 every object intact, 3 failures found (each printed,
recorded and appended to ``problems/fixity.log``), 1 error (storage unavailable, another run in progress).
docs/storage-tiers-and-fixity.md.
"""

from __future__ import annotations

import time

from django.core.management.base import CommandError

from config.commands import EXIT_ERROR, EXIT_INVALID, DossierCommand
from exports.services.fixity import FixityReport, FixityResult, FixityRunBusy, fixity_run_recorded

ORDER = ("intact", "recorded", "unrecorded")


def positive(value: str) -> int:
    import argparse

    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


class Command(DossierCommand):
    help = "Check stored objects against their recorded digests. Exit 0 intact, 3 failures found, 1 error."

    def add_arguments(self, parser):
        parser.add_argument("--sample", type=positive, help="check only the N objects checked longest ago")
        parser.add_argument("--deep", action="store_true", help="also decrypt and check each plaintext sha256")
        parser.add_argument(
            "--record-missing",
            action="store_true",
            help="record the stored digest of objects stored before it was recorded (after a plaintext check)",
        )

    def handle(self, *args, sample=None, deep=False, record_missing=False, **options):
        self._started = time.monotonic()
        try:
            report = fixity_run_recorded(
                sample=sample, deep=deep, record_missing=record_missing, progress=self.progress
            )
        except FixityRunBusy as exc:
            raise CommandError(str(exc), returncode=EXIT_ERROR) from exc
        self.summarize(report)
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} stored object(s) failed the fixity check", returncode=EXIT_INVALID
            )
        if report.errors:
            raise CommandError(f"{len(report.errors)} object(s) could not be read", returncode=EXIT_ERROR)

    def progress(self, index: int, total: int, result: FixityResult | None) -> None:
        if not self.stderr.isatty():
            return
        shown = f"{result.target.kind} {result.target.pk}: {result.outcome}" if result else "storage unavailable"
        self.stderr.write(f"\r\033[K{index}/{total} {shown}", ending="")
        if index == total:
            self.stderr.write("")

    def summarize(self, report: FixityReport) -> None:
        for result in report.failures:
            target = result.target
            self.stdout.write(f"  FAILED {target.kind} {target.pk} ({target.name}): {result.outcome} {result.detail}")
        for target, reason in report.errors:
            self.stdout.write(f"  ERROR {target.kind} {target.pk} ({target.name}): {reason}")
        parts = [f"{outcome} {report.counts[outcome]}" for outcome in ORDER if report.counts.get(outcome)]
        if report.failures:
            parts.append(f"failed {len(report.failures)}")
        if report.errors:
            parts.append(f"unreadable {len(report.errors)}")
        seconds = max(time.monotonic() - self._started, 1e-6)
        rate = report.bytes_read / seconds / (1 << 20)
        mode = "deep " if report.deep else ""
        self.stdout.write(
            f"{mode}fixity check: {report.checked + len(report.errors)} object(s), "
            + (", ".join(parts) or "none")
            + f"; {report.bytes_read} bytes in {seconds:.1f}s ({rate:.0f} MiB/s)"
        )
        if report.counts.get("unrecorded"):
            self.stdout.write("  objects without a stored digest: run with --record-missing to record it")
