"""The text policy (textpolicy, docs/text-policy.md) and the places that apply it outside narratives."""

import json
import subprocess
import sys
import unicodedata
from io import StringIO

import pytest
from django.template import Context, Template
from django.utils.safestring import mark_safe

import textpolicy
from config.commands import DossierCommand


def test_every_control_and_format_character_but_tab_and_newline_is_unsafe():
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs"):
            assert textpolicy.is_unsafe(char) == (char not in "\t\n"), f"U+{code:04X} ({category})"


def test_ordinary_text_is_left_alone():
    text = "Ångström 東京 émoji 🧪 a+b=c <tag> \\ \t\n"
    assert textpolicy.inert(text) is text
    assert (
        textpolicy.inert("\u0627\u0644\u0639\u0631\u0628\u064a\u0629") == "\u0627\u0644\u0639\u0631\u0628\u064a\u0629"
    )


def test_escapes_are_visible_and_upper_case():
    assert textpolicy.inert("a\u202eb\u200bc\x1b[31m\x00\x9b\ufeff\U000e0041") == (
        "a<U+202E>b<U+200B>c<U+001B>[31m<U+0000><U+009B><U+FEFF><U+E0041>"
    )
    assert textpolicy.inert("keep\ttabs\nand lines\r\n") == "keep\ttabs\nand lines<U+000D>\n"
    assert textpolicy.inert_line("one\tline\nonly\u2028") == "one<U+0009>line<U+000A>only<U+2028>"
    assert textpolicy.inert("\ud800") == "<U+D800>"


def test_json_escapes_of_controls_show_the_same_way_as_raw_characters():
    encoded = json.dumps({"k\x1b": ["\x1b[31m", "\u202e", "C:\\u001b", "\x7f"]}, ensure_ascii=False)
    shown = textpolicy.inert_json(encoded)
    assert shown == '{"k<U+001B>": ["<U+001B>[31m", "<U+202E>", "C:\\\\u001b", "<U+007F>"]}'
    assert json.loads(shown)["k<U+001B>"][2] == "C:\\u001b"  # still JSON; an escaped backslash stays text


def test_the_pure_libraries_stay_free_of_django():
    code = "import sys, exports.bundle, exports.narratives, textpolicy; print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert result.stdout.strip() == "False"


def test_the_inert_filter_escapes_user_text_in_pages():
    rendered = Template("<p>{{ title|inert }}</p><p>{{ safe|inert }}</p>").render(
        Context({"title": "x\u202e<b>y</b>\x1b", "safe": mark_safe("<em>ok</em>\u200b")})
    )
    assert rendered == "<p>x&lt;U+202E&gt;&lt;b&gt;y&lt;/b&gt;&lt;U+001B&gt;</p><p><em>ok</em>&lt;U+200B&gt;</p>"


def test_command_output_is_inert():
    class Echo(DossierCommand):
        def handle(self, *args, **options):
            self.stdout.write("title: evil\u202etxt\x1b[2J\nnext line")
            self.stderr.write("name \x1b]0;owned\x07")

    out, err = StringIO(), StringIO()
    command = Echo()
    command.execute(stdout=out, stderr=err, no_color=True, force_color=False, skip_checks=True)
    assert out.getvalue() == "title: evil<U+202E>txt<U+001B>[2J\nnext line\n"
    assert err.getvalue() == "name <U+001B>]0;owned<U+0007>\n"


@pytest.mark.django_db
def test_escalation_mail_shows_titles_and_stage_names_inert(team, mailoutbox):
    from datetime import timedelta

    from django.utils import timezone

    from approvals.models import ApprovalStage
    from approvals.services.monitor import _escalation_messages
    from exports.services.executions import execution_create
    from tests.approvals.factories import crew_for, export_with_ladder, published_snapshot

    crew = crew_for(team)
    stages = [{"name": "QA\u202e review\x1b[5m", "required_role": "qa_approver", "sla_hours": 1, "meaning": "ok"}]
    snapshot = published_snapshot(stages=stages)
    execution = execution_create(team=team, title="Run \u200bhidden\x1b[31m", owner=crew.author)
    export = export_with_ladder(execution=execution, author=crew.author, snapshot=snapshot)
    stage = ApprovalStage.objects.select_related("ladder__export__execution", "assignee").get(ladder__export=export)
    stage.due_at = timezone.now() - timedelta(hours=2)
    (message,) = _escalation_messages([stage], {}, timezone.now())
    for part in (message.subject, message.body):
        assert "\x1b" not in part and "\u202e" not in part and "\u200b" not in part
    assert "QA<U+202E> review<U+001B>[5m" in message.subject
    assert "Run <U+200B>hidden<U+001B>[31m" in message.body


def test_command_styles_survive_while_user_text_is_escaped():
    class Styled(DossierCommand):
        def handle(self, *args, **options):
            self.stdout.write("done: evil\x1b[8m", self.style.SUCCESS)

    out = StringIO()
    Styled(force_color=True).execute(stdout=out, no_color=False, force_color=True, skip_checks=True)
    assert out.getvalue().startswith("\x1b[") and "done: evil<U+001B>[8m" in out.getvalue()
