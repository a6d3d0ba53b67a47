"""API token authentication: django-rest-knox tokens (SHA-512 digests, expiring), sent as
``Authorization: Token <token>``. See docs/authentication.md."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework import exceptions


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError:  # a header that is not a token must be a 401, never a 500
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token) -> bool:
        """Whether the presented token has expired (it is then deleted and refused). knox also reads every other
        token of the user on every request to delete their expired ones: one more query per API call for rows
        that can never authenticate. They are deleted when the user is next issued a token
        (governance/services/tokens.py) and when presented."""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes this authentication (as DRF's token scheme was: ``tokenAuth``)."""

    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="AUTHORIZATION", token_prefix=self.target.authenticate_header(None)
        )
