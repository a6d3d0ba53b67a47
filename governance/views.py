"""The sign-in page (Django's login view with the shared guessing limit) and the user's own preferences."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from config.errors import ValidationFailed
from governance.forms import LoginForm, PreferencesForm
from governance.selectors.preferences import team_time_zone, user_time_zone_choice
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
