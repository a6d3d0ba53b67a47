"""erase_team_data <team> --reason R --actor USERNAME [--dry-run]: remove a team's content, keep its legal record.

Exit codes (docs/team-data.md): 0 done (or nothing left to erase), 2 not permitted or a bad argument (unknown team
or user, the actor is not an admin of the team, a ``compliance``-mode retention has not ended), 3 an active legal
hold covers the team or one of its exports, 1 any other error. ``--dry-run`` prints what would go and what is kept
under legal obligation, with the same refusals, and changes nothing.
"""

from __future__ import annotations

import sys

from config.commands import EXIT_INVALID, EXIT_NOT_PERMITTED, DossierCommand
from config.errors import Conflict, NotFound, PermissionDenied
from exports.management.commands.export_team_data import actor_or_exit
from exports.services.team_erasure import ErasureReport, team_erase

EXIT_FOR_CODE = {"legal_hold_active": EXIT_INVALID, "retention_locked": EXIT_NOT_PERMITTED}


class Command(DossierCommand):
    help = (
        "Erase a team's content (stored files, event payloads, narratives, notebook bodies, uploads, bundles) and "
        "keep signatures, approval history, holds and the audit trail. Exit codes: 0 done, 2 not permitted, "
        "3 legal hold active, 1 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("team", help="the team's slug")
        parser.add_argument("--reason", required=True, help="why the content is erased (kept as a digest)")
        parser.add_argument("--actor", required=True, help="username of the admin erasing")
        parser.add_argument("--dry-run", action="store_true", help="report what would go; change nothing")

    def handle(self, *args, team: str, reason: str, actor: str, dry_run: bool, **options):
        if not reason.strip():
            self.stderr.write("error: --reason must say why")
            sys.exit(EXIT_NOT_PERMITTED)
        user = actor_or_exit(self, actor)
        try:
            report = team_erase(slug=team, actor=user, reason=reason, dry_run=dry_run)
        except (NotFound, PermissionDenied) as exc:
            self.stderr.write(f"error: {exc.message}")
            sys.exit(EXIT_NOT_PERMITTED)
        except Conflict as exc:
            self.stderr.write(f"error: {exc.code}: {exc.message}")
            sys.exit(EXIT_FOR_CODE.get(exc.code, 1))
        self._print(report)

    def _print(self, report: ErasureReport) -> None:
        if report.dry_run:
            self.stdout.write(f"dry run: nothing changed for team {report.team.slug}")
            heading = "would remove"
        elif report.nothing_to_remove:
            self.stdout.write(f"nothing left to erase for team {report.team.slug}")
            heading = "removed"
        else:
            self.stdout.write(f"erased the content of team {report.team.slug}")
            heading = "removed"
        self.stdout.write(f"{heading}:")
        for kind, count in report.removed.items():
            self.stdout.write(f"  {kind}: {count}")
        self.stdout.write("kept under legal obligation:")
        for kind, count in report.retained.items():
            self.stdout.write(f"  {kind}: {count}")
