"""The governance event feed (docs/feed.md): audit rows of the registered event types, streamed as NDJSON to a sink,
resumable from a cursor that moves only after the sink accepted a batch."""
