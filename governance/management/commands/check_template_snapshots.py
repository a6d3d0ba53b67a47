from config.commands import EXIT_INVALID, DossierCommand
from governance.selectors.templates import snapshots_drifted
from governance.services.templates import snapshot_hash


class Command(DossierCommand):
    help = (
        "Report template snapshots whose content no longer matches their recorded sha256 (drift). "
        "Exit 0 when every snapshot is intact, 3 listing the drifted ones, 1 on error."
    )

    def handle(self, *args, **options):
        drifted = snapshots_drifted()
        if not drifted:
            self.stdout.write("template snapshots intact")
            return
        for snapshot in drifted:
            self.stdout.write(
                f"drift: snapshot {snapshot.pk} ({snapshot.template_key} v{snapshot.version}) recorded "
                f"{snapshot.content_sha256}, content hashes to {snapshot_hash(snapshot.canonical_json)}"
            )
        self.stdout.write(f"{len(drifted)} drifted snapshot(s): new exports on them are refused")
        raise SystemExit(EXIT_INVALID)
