"""export_team_data <team> --output PATH --actor USERNAME: the team's whole record as one signed bundle.

Exit codes (docs/team-data.md): 0 written, 2 not permitted or a bad argument (unknown team or user; the actor
holds none of ``compliance``, ``admin``, ``auditor`` in the team), 1 any other error (a stored file missing or
altered, storage unavailable). The bundle is checked like a dossier's: ``manage.py verify_export PATH``.
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model

from config.commands import EXIT_NOT_PERMITTED, DossierCommand
from config.errors import NotFound, PermissionDenied
from exports.services.team_data_exports import team_data_export_to_file


def actor_or_exit(command: DossierCommand, username: str):
    """The active user named by ``--actor``; exit 2 when there is none."""
    actor = get_user_model().objects.filter(username=username, is_active=True).first()
    if actor is None:
        command.stderr.write(f"error: no active user '{username}'")
        sys.exit(EXIT_NOT_PERMITTED)
    return actor


class Command(DossierCommand):
    help = (
        "Write a team's executions, events, evidence, exports and bundles, ladders, signatures, history, holds and "
        "audit rows as one signed BagIt bundle. Exit codes: 0 written, 2 not permitted or bad argument, 1 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("team", help="the team's slug")
        parser.add_argument("--output", required=True, help="the bundle file to write, or a directory for it")
        parser.add_argument("--actor", required=True, help="username of the person exporting")

    def handle(self, *args, team: str, output: str, actor: str, **options):
        user = actor_or_exit(self, actor)
        try:
            path, bundle = team_data_export_to_file(team_slug=team, actor=user, output=output)
        except (NotFound, PermissionDenied) as exc:
            self.stderr.write(f"error: {exc.message}")
            sys.exit(EXIT_NOT_PERMITTED)
        result = bundle.result
        self.stdout.write(f"written: {path}")
        self.stdout.write(f"bag: {result.name}  sha256: {result.sha256}  size: {result.size}  key: {result.key_id}")
        for kind, count in bundle.counts.items():
            self.stdout.write(f"  {kind}: {count}")
