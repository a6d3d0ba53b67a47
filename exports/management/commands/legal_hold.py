import sys

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from config.commands import EXIT_ERROR, EXIT_NOT_PERMITTED, DossierCommand
from config.errors import DossierError, PermissionDenied
from exports.choices import LegalHoldScope
from exports.selectors.holds import legal_holds_for_user
from exports.services.holds import legal_hold_place, legal_hold_release
from governance.selectors.teams import team_get_for_user
from textpolicy import inert_line


class Command(DossierCommand):
    help = (
        "Place, release or list legal holds as a person (docs/records-lifecycle.md). "
        "Exit 0 done, 2 not permitted (unknown actor, or no compliance/admin role in the team), 1 any other error."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["apply", "release", "list"])
        parser.add_argument("hold_id", nargs="?", type=int, help="release: the hold's id.")
        parser.add_argument("--actor", required=True, help="Username of the person acting.")
        parser.add_argument("--team", help="apply: the team's slug (list: only that team).")
        parser.add_argument("--export", type=int, help="apply: hold this export only (scope export).")
        parser.add_argument("--reason", help="apply and release: why (required).")
        parser.add_argument("--active", action="store_true", help="list: active holds only.")

    def _require(self, options, *names: str) -> None:
        missing = [name for name in names if options.get(name) in (None, "")]
        if missing:
            shown = ", ".join(name if name == "hold_id" else f"--{name}" for name in missing)
            raise CommandError(f"{options['action']} needs {shown}")

    def handle(self, *args, **options):
        actor = get_user_model().objects.filter(username=options["actor"], is_active=True).first()
        if actor is None:
            self.stderr.write(f"error: no active user '{options['actor']}'")
            sys.exit(EXIT_NOT_PERMITTED)
        try:
            getattr(self, f"_{options['action']}")(actor, options)
        except PermissionDenied as exc:
            self.stderr.write(f"error: {exc.message}")
            sys.exit(EXIT_NOT_PERMITTED)
        except DossierError as exc:
            self.stderr.write(f"error: {exc.message}")
            sys.exit(EXIT_ERROR)

    def _apply(self, actor, options):
        self._require(options, "team", "reason")
        team = team_get_for_user(user=actor, slug=options["team"])
        scope = LegalHoldScope.EXPORT if options["export"] is not None else LegalHoldScope.TEAM
        hold = legal_hold_place(
            actor=actor, team=team, scope=scope, export_id=options["export"], reason=options["reason"]
        )
        self.stdout.write(f"legal hold {hold.pk} placed on {self._target(hold)}")

    def _release(self, actor, options):
        self._require(options, "hold_id", "reason")
        hold = legal_hold_release(actor=actor, hold_id=options["hold_id"], reason=options["reason"])
        self.stdout.write(f"legal hold {hold.pk} released ({self._target(hold)})")

    def _list(self, actor, options):
        filters = {key: value for key, value in (("team", options["team"]),) if value}
        if options["active"]:
            filters["active"] = "true"
        for hold in legal_holds_for_user(user=actor, filters=filters):
            state = f"released {hold.released_at.isoformat()}" if hold.released_at else "active"
            self.stdout.write(
                f"{hold.pk}\t{self._target(hold)}\t{state}\tplaced {hold.placed_at.isoformat()} by "
                f"{hold.placed_by.username}\t{inert_line(hold.reason)}"
            )

    @staticmethod
    def _target(hold) -> str:
        return f"export {hold.export_id} of team {hold.team.slug}" if hold.export_id else f"team {hold.team.slug}"
