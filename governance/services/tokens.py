from django.contrib.auth import authenticate
from rest_framework.authtoken.models import Token

from config.errors import NotAuthenticated


def token_issue(*, request, username: str, password: str) -> Token:
    """Exchange a username and password for the user's API token (created on first use)."""
    user = authenticate(request=request, username=username, password=password)
    if user is None or not user.is_active:
        raise NotAuthenticated("Unknown username or wrong password.", code="invalid_credentials")
    token, _ = Token.objects.get_or_create(user=user)
    return token
