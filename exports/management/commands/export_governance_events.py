"""export_governance_events: stream governance events as NDJSON to a sink, resuming from a cursor (docs/feed.md).

Exit codes: 0 done (nothing left, or ``--limit`` reached), 3 the sink refused a batch after every retry (the cursor
stays before it), 1 error (bad arguments, unreadable cursor file, another ``db`` run in progress).
"""

import sys

from django.conf import settings
from django.core.management.base import CommandError

from config.commands import EXIT_INVALID, DossierCommand
from exports.feed.cursors import FileCursorStore
from exports.feed.service import FeedRunResult, governance_feed_run, governance_feed_run_recorded, webhook_sink
from exports.feed.sinks import FileSink, Sink, StreamSink


class Command(DossierCommand):
    help = "Export governance events as NDJSON to stdout, a file or a webhook. Exit 0 done, 3 refused, 1 error."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="events to export at most (default: setting)")
        parser.add_argument("--sink", choices=["stdout", "file", "webhook"], default="stdout")
        parser.add_argument("--file-path", help="the NDJSON file the file sink appends to")
        parser.add_argument("--webhook-url", help="the webhook sink's URL (default: DOSSIER_FEED_WEBHOOK_URL)")
        parser.add_argument("--cursor-store", choices=["file", "db"], default="file")
        parser.add_argument("--cursor-store-path", help="the cursor file of the file store")
        parser.add_argument("--batch-size", type=int, default=None, help="events per batch (default: setting)")

    def handle(self, *args, **options):
        limit = options["limit"] if options["limit"] is not None else settings.DOSSIER_FEED_RUN_LIMIT
        batch_size = options["batch_size"]
        if limit < 1 or (batch_size is not None and batch_size < 1):
            raise CommandError("--limit and --batch-size must be at least 1")
        sink = self._sink(options)
        if options["cursor_store"] == "db":
            result = governance_feed_run_recorded(sink=sink, limit=limit, batch_size=batch_size)
            if result.skipped:
                raise CommandError("another governance feed run holds the lock")
        else:
            if not options["cursor_store_path"]:
                raise CommandError("--cursor-store file needs --cursor-store-path")
            store = FileCursorStore(options["cursor_store_path"])
            result = governance_feed_run(sink=sink, store=store, limit=limit, batch_size=batch_size)
        self._report(result)
        if result.refused:
            sys.exit(EXIT_INVALID)

    def _sink(self, options) -> Sink:
        if options["sink"] == "file":
            if not options["file_path"]:
                raise CommandError("--sink file needs --file-path")
            return FileSink(options["file_path"])
        if options["sink"] == "webhook":
            url = options["webhook_url"] or settings.DOSSIER_FEED_WEBHOOK_URL
            if not url or not url.startswith(("http://", "https://")):
                raise CommandError("--sink webhook needs an http(s) --webhook-url or DOSSIER_FEED_WEBHOOK_URL")
            return webhook_sink(url)
        return StreamSink(getattr(self.stdout, "_out", self.stdout))  # type: ignore[arg-type]

    def _report(self, result: FeedRunResult) -> None:
        # stdout may be the feed itself: the summary goes to stderr.
        line = (
            f"exported {result.exported} event(s) in {result.batches} batch(es); "
            f"cursor {result.start.cursor} -> {result.state.cursor}, {result.state.rows} row(s) in all"
        )
        if result.refused:
            line += f"; refused: {result.refused}"
        self.stderr.write(line)
