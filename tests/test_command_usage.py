"""Every command shares one exit-code table (README, "Management commands"): a usage error is exit 1, never the
argparse default 2, which means "not permitted"."""

import pytest
from django.core.management import CommandError, call_command, load_command_class


@pytest.mark.parametrize(
    ("app", "name", "argv"),
    [
        ("exports", "export_governance_events", ["--sink", "nope"]),
        ("governance", "verify_audit_chain", ["--bogus"]),
        ("governance", "export_audit_trail", ["--format", "xml"]),
        ("exports", "verify_artifacts", ["--sample", "0"]),
    ],
)
def test_a_usage_error_exits_1_with_a_one_line_reason(app, name, argv, capsys):
    command = load_command_class(app, name)
    with pytest.raises(SystemExit) as exited:
        command.run_from_argv(["manage.py", name, *argv])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("usage: manage.py " + name)
    assert err.rstrip().splitlines()[-1].startswith("error: ")


def test_call_command_still_raises_command_error():
    with pytest.raises(CommandError):
        call_command("export_governance_events", "--sink", "nope")
