"""The sign-in page: Django's login view with the shared guessing limit."""

from django.contrib.auth import views as auth_views

from governance.forms import LoginForm


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.throttled is not None:
            response.status_code = 429
            for name, value in form.throttled.headers.items():
                response[name] = value
        return response
