"""Extension points that higher apps subscribe to (dependencies point one way: they import us)."""

from django.dispatch import Signal

# Sent after commit whenever something changes the state of an execution in a team (events, approvals,
# overrides, coaching notes). Receivers: ``sender``, ``team_id``, ``execution_id``, ``reason``.
team_state_changed = Signal()
