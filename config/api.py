"""API conventions shared by every app: the error shape of docs/errors.md, pagination and input parsing."""

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import Http404, QueryDict
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response

from config.errors import DossierError, ValidationFailed

logger = logging.getLogger(__name__)

_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _validation_message(detail: Any) -> str:
    if isinstance(detail, dict):
        fields = ", ".join(sorted(str(key) for key in detail))
        return f"Invalid input in: {fields}." if fields else "The request is not valid."
    if isinstance(detail, list) and detail:
        return str(detail[0])
    return "The request is not valid."


def _validation_details(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {"fields": detail}
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every error — ours, DRF's and Django's — as ``{"error": {"code", "message", "details"}}``."""
    if isinstance(exc, DossierError):
        logger.info(
            "%s answered %s %s", context["request"].path, exc.status_code, exc.code, extra={"error_code": exc.code}
        )
        headers = getattr(exc, "headers", None)  # e.g. Retry-After on 429 too_many_attempts
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=getattr(exc, "message_dict", None) or exc.messages)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        return Response(
            error_body("validation_error", _validation_message(detail), _validation_details(detail)), status=400
        )
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        wait = getattr(exc, "wait", None)  # set by Throttled, which the stubs do not declare
        headers = {"Retry-After": str(int(wait))} if isinstance(exc, exceptions.Throttled) and wait else {}
        details = {"wait": wait} if isinstance(exc, exceptions.Throttled) else {}
        return Response(error_body(code, str(exc.detail), details), status=exc.status_code, headers=headers)
    return None


class SelectorListApi(generics.ListAPIView):
    """A paginated list whose rows come from a selector; ``schema_model`` lets the OpenAPI generator introspect it."""

    schema_model: type[models.Model]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.schema_model._default_manager.none()
        return self.select()

    def select(self):
        raise NotImplementedError


class UnknownFields(ValidationFailed):
    code = "unknown_fields"
    default_message = "The request holds fields this endpoint does not take."


def _writable_fields(serializer: serializers.Serializer) -> dict[str, serializers.Field]:
    return {name: field for name, field in serializer.fields.items() if not field.read_only}


def _unknown_paths(field: serializers.Field, data: Any, path: str) -> list[str]:
    """Paths of the keys in ``data`` that ``field`` (a serializer, a list of them, or a plain field) does not take.
    Free-form fields (``JSONField``, ``DictField``) take any key; values of the wrong type are left to validation."""
    if isinstance(field, serializers.ListSerializer | serializers.ListField):
        if not isinstance(data, list):
            return []
        child = field.child
        if child is None:  # DRF always sets one; without it no key is unknown
            return []
        return [found for index, item in enumerate(data) for found in _unknown_paths(child, item, f"{path}[{index}]")]
    if isinstance(field, serializers.Serializer):
        if not isinstance(data, Mapping):
            return []
        known = _writable_fields(field)
        found = []
        for key in data:
            key_path = f"{path}.{key}" if path else str(key)
            if key not in known:
                found.append(key_path)
            else:
                found.extend(_unknown_paths(known[key], data[key], key_path))
        return found
    return []


def unknown_fields_check(serializer_class: type[serializers.Serializer], data: Any, *, many: bool = False) -> None:
    """Refuse (400 ``unknown_fields``, ``details.fields`` listing their paths) any field the serializer does not
    take, at any depth, rather than dropping it silently (docs/api-schema.md)."""
    serializer = serializer_class(many=True) if many else serializer_class()
    unknown = _unknown_paths(serializer, data, "")
    if unknown:
        raise UnknownFields(
            f"Unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.", details={"fields": unknown}
        )


# JSON types each field takes as they are: DRF would otherwise turn 5 into "5" for a string field, "5" or 5.0 into
# 5 for an integer and "yes" into true, accepting what the schema says is invalid.
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float), "a number"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string"),
    (serializers.DictField, (dict,), "an object"),
)


def _type_errors(field: serializers.Field, data: Any) -> Any:
    """The type errors of ``data`` shaped as DRF shapes validation errors (``{"evidence": {"0": {"id": [...]}}}``),
    or None."""
    if data is None:
        return None  # null is the field's own rule (allow_null)
    if isinstance(field, serializers.ListSerializer | serializers.ListField):
        return _list_type_errors(field, data)
    if isinstance(field, serializers.Serializer):
        return _object_type_errors(field, data)
    return _scalar_type_errors(field, data)


def _list_type_errors(field: serializers.ListSerializer | serializers.ListField, data: Any) -> Any:
    if not isinstance(data, list):
        return ["Expected a list."]
    child = field.child
    if child is None:  # DRF always sets one; without it no item has a type to check
        return None
    errors = {str(index): _type_errors(child, item) for index, item in enumerate(data)}
    return {index: error for index, error in errors.items() if error} or None


def _object_type_errors(field: serializers.Serializer, data: Any) -> Any:
    if not isinstance(data, Mapping):
        return ["Expected an object."]
    known = _writable_fields(field)
    errors = {key: _type_errors(known[key], value) for key, value in data.items() if key in known}
    return {key: error for key, error in errors.items() if error} or None


def _scalar_type_errors(field: serializers.Field, data: Any) -> list[str] | None:
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            if not isinstance(data, types) or (bool not in types and isinstance(data, bool)):
                return [f"Expected {name}."]
            return None
    return None


def json_type_errors(serializer_class: type[serializers.Serializer], data: Any, *, many: bool = False) -> Any:
    """Where a JSON value has another type than the schema says (DRF would coerce it), shaped like DRF's errors."""
    return _type_errors(serializer_class(many=True) if many else serializer_class(), data)


def validated(
    serializer_class: type[serializers.Serializer], data: Any, *, many: bool = False, query: bool = False
) -> Any:
    """Validate input with a serializer and return its validated data (raising the 400 shape on failure).

    Every request body goes through here, so a field the serializer does not take is refused (400
    ``unknown_fields``) instead of being dropped. ``query=True`` validates query parameters, which stay lenient
    about extra names (cache busters, tracking parameters)."""
    if not isinstance(data, Mapping) and not many:
        raise exceptions.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    type_errors = None
    if not query:
        unknown_fields_check(serializer_class, data, many=many)
        if not isinstance(data, QueryDict):  # form fields are text by nature; JSON has types
            type_errors = json_type_errors(serializer_class, data, many=many)
    serializer = serializer_class(data=data, many=many)
    valid = serializer.is_valid()
    if type_errors:
        # A wrong type is reported as such (not as what coercing it made of it), beside every other problem.
        errors = serializer.errors
        if isinstance(type_errors, dict) and isinstance(errors, dict):
            type_errors = {**errors, **type_errors}
        raise exceptions.ValidationError(type_errors if isinstance(type_errors, dict) else {"(body)": type_errors})
    if not valid:
        raise exceptions.ValidationError(serializer.errors)
    return serializer.validated_data
