"""The sign-in page (Django's login view with the shared guessing limit), the password change page and the user's own
preferences."""

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from config.errors import DossierError, ValidationFailed
from governance.forms import LoginForm, PasswordChangeForm, PreferencesForm
from governance.passwords import password_expired, password_history_size
from governance.selectors.preferences import team_time_zone, user_time_zone_choice
from governance.services.passwords import password_change
from governance.services.preferences import user_preference_update


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled is not None:
            response.status_code = form.throttled.status_code  # 429 too many attempts, 503 busy
            for name, value in form.throttled.headers.items():
                response[name] = value
        return response


@login_required
def preferences(request):
    """The time zone the user's pages show (docs/pages.md)."""
    team_zone = team_time_zone(user=request.user)
    form = PreferencesForm(
        request.POST or None, initial={"time_zone": user_time_zone_choice(user=request.user)}, team_zone=team_zone
    )
    if request.method == "POST" and form.is_valid():
        try:
            user_preference_update(user=request.user, time_zone=form.cleaned_data["time_zone"])
        except ValidationFailed as exc:
            form.add_error("time_zone", exc.message)
        else:
            zone = form.cleaned_data["time_zone"] or f"your team's ({team_zone})"
            messages.success(request, f"Saved: pages now show times in {zone} time.")
            return redirect("preferences")
    status = 400 if form.errors else 200
    return render(request, "governance/preferences.html", {"form": form, "team_zone": team_zone}, status=status)


@login_required
def password_change_page(request):
    """Change one's password (docs/authentication.md, "Password aging and reuse"); the session stays signed in."""
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            password_change(request=request, user=request.user, via="page", **form.cleaned_data)
        except DossierError as exc:
            for field, problems in exc.details.items():
                form.add_error(field if field in form.fields else None, " ".join(problems))
            if not exc.details:
                form.add_error(None, exc.message)
        else:
            update_session_auth_hash(request, request.user)
            messages.success(request, "Your password was changed.")
            return redirect("home")
    context = {"form": form, "expired": password_expired(user=request.user), "history": password_history_size()}
    return render(request, "registration/password_change.html", context, status=400 if form.errors else 200)
