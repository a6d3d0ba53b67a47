from datetime import UTC, datetime

from approvals.services.audit_reviews import audit_reviews_schedule
from config.commands import EXIT_INVALID, DossierCommand
from textpolicy.utc import utc_iso


def _month(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m").replace(tzinfo=UTC)


class Command(DossierCommand):
    help = (
        "Open each team's audit-trail review of a month (default: the month before now), assigned to an "
        "independent reviewer (docs/part11.md). Idempotent. Exit codes: 0 done, 3 a review was opened without an "
        "independent reviewer to assign, 1 error (e.g. the month has not ended)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", type=_month, help="The month to open reviews for, as YYYY-MM (UTC).")

    def handle(self, *args, period: datetime | None = None, **options):
        result = audit_reviews_schedule(period_start=period)
        self.stdout.write(f"period: {utc_iso(result.period_start)} to {utc_iso(result.period_end)}")
        for review in result.opened:
            reviewer = review.reviewer.username if review.reviewer else "nobody independent"
            self.stdout.write(f"opened review {review.pk} for team {review.team.slug}, assigned to {reviewer}")
        self.stdout.write(f"opened: {len(result.opened)}")
        if result.unassigned:
            self.stderr.write(f"{len(result.unassigned)} review(s) have no independent reviewer to assign.")
            raise SystemExit(EXIT_INVALID)
