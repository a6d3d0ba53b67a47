"""The OpenAPI schema tells the truth about every operation (docs/api-schema.md).

Every view's own ``extend_schema`` says what it answers when it succeeds and the errors only it can raise; this
schema class adds the error statuses every operation of a kind can answer, each with the one error shape of
``config.api.exception_handler``:

- 400 when the operation takes a body or query parameters (validation, ``unknown_fields``, ``invalid_text``,
  malformed JSON, ``invalid_filter``);
- 401 and 403 when it authenticates (no or a bad token; a role or clearance missing, or a session without CSRF);
- 404 when it names objects, in its path or in its body (a foreign team's object is a 404 too), and for a
  paginated list (a page past the last);
- 415 when it takes a body (in another media type).

A list answered by a POST is documented as the bare array it is, never as a page.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR_DESCRIPTIONS = {
    "400": "The request is not valid: `validation_error` with `details.fields`, `unknown_fields` with "
    "`details.fields` listing the fields it does not take, `invalid_text`, `malformed_request`, `invalid_filter`.",
    "401": "`not_authenticated` or `authentication_failed`: no credentials, or a token that is unknown, expired "
    "or revoked.",
    "403": "`permission_denied` (or a more specific code): the caller lacks the role, the clearance or the CSRF "
    "token this operation needs.",
    "404": "`not_found`: the object does not exist or belongs to a team the caller is not in (or, for a list, "
    "the page is past the last one).",
    "415": "`unsupported_media_type`: the body is not in a media type this operation takes.",
}


# Any JSON value but null (OpenAPI 3.0 has no "null" type to exclude).
NOT_NULL = {"anyOf": [{"type": kind} for kind in ("object", "array", "string", "number", "boolean")]}
# Python's str.strip() (which DRF applies) also strips \x1c-\x1f, which regex engines' \s does not cover.
NON_BLANK = {"type": "string", "minLength": 1, "pattern": r"[^\s\x1c-\x1f]"}


class ErrorBodyOutput(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case error code.")
    message = serializers.CharField(help_text="A human sentence.")
    details = serializers.DictField(help_text="Details by code, e.g. `fields` for a validation error.")


class ErrorOutput(serializers.Serializer):
    """Every API error: ``{"error": {"code", "message", "details"}}``."""

    error = ErrorBodyOutput()


class AutoSchema(SpectacularAutoSchema):
    def _get_paginator(self):
        # Only reads are paginated: a POST that answers several rows answers a bare array.
        return super()._get_paginator() if self.method == "GET" else None

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.JSONField) and not field.allow_null:
            return {**NOT_NULL, **{key: value for key, value in schema.items() if key != "nullable"}}
        if direction == "request" and isinstance(field, serializers.ListField) and not field.allow_empty:
            schema.setdefault("minItems", 1)
        if (
            direction == "request"
            and type(field) is serializers.CharField
            and field.trim_whitespace
            and not field.allow_blank
            and "pattern" not in schema
        ):
            # Surrounding whitespace is trimmed before "may not be blank" is checked: blank means no visible
            # character, and the schema says so.
            schema["pattern"] = NON_BLANK["pattern"]
        return schema

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False  # unknown fields are 400 unknown_fields (config.api.validated)
            any_of = getattr(serializer, "schema_any_of", None)
            if any_of:
                # Rules between fields that the service enforces (e.g. "template_key or forked_from_id").
                schema["anyOf"] = any_of
        return schema

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        self._one_or_many(operation)
        if "requestBody" in operation:
            request = self.get_request_serializer()
            if getattr(request, "schema_any_of", None) or isinstance(request, PolymorphicProxySerializer):
                operation["requestBody"]["required"] = True  # an empty body cannot satisfy the anyOf / oneOf
        responses = operation["responses"]
        for code in self._error_statuses(operation):
            if code not in responses:
                responses[code] = self._error_response(code)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _one_or_many(self, operation: dict) -> None:
        """A view with ``accepts_one_or_many = N`` takes one object or a list of 1 to N of them."""
        limit = getattr(self.view, "accepts_one_or_many", None)
        if not limit or "requestBody" not in operation:
            return
        for content in operation["requestBody"]["content"].values():
            schema = content["schema"]
            if schema.get("type") == "array":
                item = schema["items"]
                content["schema"] = {
                    "oneOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": limit}]
                }

    def _error_statuses(self, operation: dict) -> list[str]:
        parameters = operation.get("parameters", [])
        takes_body = "requestBody" in operation
        restricted = any(not isinstance(permission, AllowAny) for permission in self.view.get_permissions())
        statuses = []
        if takes_body or any(parameter["in"] == "query" for parameter in parameters):
            statuses.append("400")
        if self.view.get_authenticators():
            statuses.append("401")
        if restricted:
            statuses.append("403")
        paginated = any(parameter["name"] == "page" and parameter["in"] == "query" for parameter in parameters)
        if any(parameter["in"] == "path" for parameter in parameters) or (takes_body and restricted) or paginated:
            statuses.append("404")
        if takes_body:
            statuses.append("415")
        return statuses

    def _error_response(self, code: str) -> dict:
        component = self.resolve_serializer(ErrorOutput, "response")
        return {
            "content": {"application/json": {"schema": component.ref}},
            "description": ERROR_DESCRIPTIONS[code],
        }
