"""verify_export <export-id | path>: check a bundle the way an auditor would.

Exit codes: 0 valid, 3 invalid (each problem printed; a stored artifact that does not decrypt is invalid), 1 error
(bad argument, unreadable file, unknown export).
Everything read from the archive is printed inert (docs/text-policy.md): a member name or title cannot move the
cursor, colour the terminal or reorder the line an auditor reads.
Every outcome (valid or invalid) is recorded in the audit trail (``exports.services.verification``).
"""

import os
import sys

from django.core.management.base import CommandError

from config.commands import EXIT_INVALID, DossierCommand
from exports.bundle import BundleError, Problem, verify_bundle
from exports.crypto import DecryptionFailed
from exports.models import ExportArtifact
from exports.selectors.narrative_exports import signing_keys_list
from exports.services.verification import SOURCE_VERIFY_EXPORT, verification_record
from exports.storage import ArtifactMissing, StorageUnavailable, artifact_local_path
from textpolicy import inert_line

MAX_ID = 2**63 - 1


class Command(DossierCommand):
    help = "Verify a bundle (structure, every digest, signature, attestation). Exit 0 valid, 3 invalid, 1 error."
    archive_sha256 = ""  # of the archive last verified, for the audit record

    def add_arguments(self, parser):
        parser.add_argument("target", help="an export id, or the path of a bundle file (.tar.zst / .tar.gz)")

    def handle(self, *args, target: str, **options):
        keys = {key.key_id: key.public_key_pem for key in signing_keys_list()}
        self.archive_sha256 = ""
        artifact = None
        if os.path.isfile(target):
            problems, summary, title = self._verify(target, keys, expected_sha256=None)
        elif target.isascii() and target.isdigit() and int(target) <= MAX_ID:
            artifact, (problems, summary, title) = self._verify_export(target, keys)
        else:
            raise CommandError(f"'{inert_line(target)}' is neither an existing bundle file nor an export id")
        verification_record(
            source=SOURCE_VERIFY_EXPORT,
            ok=not problems,
            problem_codes=[problem.code for problem in problems],
            export=artifact.export if artifact is not None else None,
            archive_sha256=self.archive_sha256,
        )
        self._report(inert_line(target), problems, summary, title)

    def _verify_export(self, target: str, keys: dict[str, str]):
        """The export's packaged artifact and the verdict on it, read through storage."""
        artifact = ExportArtifact.objects.select_related("export__execution").filter(export_id=int(target)).first()
        if artifact is None:
            raise CommandError(f"export {target} has no packaged artifact (and no file is named '{target}')")
        try:
            with artifact_local_path(artifact.storage_path) as path:
                return artifact, self._verify(path, keys, expected_sha256=artifact.sha256)
        except ArtifactMissing:
            return artifact, ([Problem("missing_file", None, "the artifact is missing from storage")], "", None)
        except DecryptionFailed as exc:
            problem = Problem("decryption_failed", None, f"the stored artifact does not open: {exc.message}")
            return artifact, ([problem], "", None)
        except StorageUnavailable as exc:
            raise CommandError(f"storage unavailable: {exc}") from exc

    def _report(self, shown: str, problems: list[Problem], summary: str, title: str | None) -> None:
        if problems:
            self.stdout.write(f"invalid: {shown}")
            for problem in problems:
                where = f" {inert_line(problem.path)}" if problem.path else ""
                self.stdout.write(f"  {inert_line(problem.code)}{where}: {inert_line(problem.message)}")
            if title:
                self.stdout.write(f"  narrative: {title}")
            sys.exit(EXIT_INVALID)
        self.stdout.write(f"valid: {shown} ({summary})")
        if title:
            self.stdout.write(f"  narrative: {title}")

    def _verify(
        self, path: str, keys: dict[str, str], *, expected_sha256: str | None
    ) -> tuple[list[Problem], str, str | None]:
        try:
            report = verify_bundle(path, keys)
        except (OSError, BundleError) as exc:
            raise CommandError(f"cannot verify {inert_line(str(path))}: {inert_line(str(exc))}") from exc
        self.archive_sha256 = report.archive_sha256 or ""
        problems = list(report.problems)
        if expected_sha256 and report.archive_sha256 != expected_sha256:
            problems.append(
                Problem(
                    "archive_digest_mismatch",
                    None,
                    f"the archive hashes to {report.archive_sha256}, the artifact record says {expected_sha256}",
                )
            )
        summary = f"bag {report.bag_name}, sha256 {report.archive_sha256}, signed by key {report.key_id}"
        return problems, summary, report.narrative_title
