"""Sign-in forms behind the shared guessing limit (docs/authentication.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, cast

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from config.humanize import until_in_words
from config.passwords import PasswordCheckBusy
from governance.models import TIME_ZONES
from governance.services.login_guard import TooManyAttempts, password_authenticate

# The mixin is used on authentication forms only: the type checker reads it as one.
if TYPE_CHECKING:
    _AuthenticationForm = AuthenticationForm
else:
    _AuthenticationForm = object


class GuardedAuthenticationMixin(_AuthenticationForm):
    """Authenticates through ``password_authenticate`` instead of ``authenticate``; a refusal by the limit is a
    form error in words, and ``throttled`` keeps it for the view (429 with Retry-After; 503 when every password
    check slot stays busy, config/passwords.py)."""

    throttled: TooManyAttempts | PasswordCheckBusy | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            try:
                self.user_cache = password_authenticate(request=self.request, username=username, password=password)
            except TooManyAttempts as exc:
                self.throttled = exc
                now = timezone.now()
                until = now + timedelta(seconds=exc.retry_after_seconds)
                raise forms.ValidationError(
                    "Too many failed sign-in attempts from your address. You can try again at "
                    f"{until_in_words(until, now=now)}.",
                    code="too_many_attempts",
                ) from None
            except PasswordCheckBusy as exc:
                self.throttled = exc
                raise forms.ValidationError(
                    "Too many sign-ins are being checked right now. Please try again in a moment.", code="busy"
                ) from None
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class LoginForm(GuardedAuthenticationMixin, AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your username and password did not match. Please try again.",
    }


class AdminLoginForm(GuardedAuthenticationMixin, AdminAuthenticationForm):
    pass


class PreferencesForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        help_text="Pages show every time in this zone. Stored times stay in UTC.",
    )

    def __init__(self, *args, team_zone: str, **kwargs):
        super().__init__(*args, **kwargs)
        time_zone = cast(forms.ChoiceField, self.fields["time_zone"])
        time_zone.choices = [("", f"My team's time zone ({team_zone})")] + [(zone, zone) for zone in sorted(TIME_ZONES)]


class PasswordChangeForm(forms.Form):
    old_password = forms.CharField(
        label="Current password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password = forms.CharField(
        label="New password",
        max_length=4096,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
