"""The OpenAPI schema tells the truth (docs/api-schema.md): every response is a serializer, nullable fields are
marked, list POSTs are arrays, every input refuses unknown fields and every operation lists its error statuses.
The live check against a running server is scripts/schema_check.py (`make schema`)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_every_json_success_response_is_a_named_serializer(schema):
    loose = []
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            body = response.get("content", {}).get("application/json", {}).get("schema")
            if status.startswith("2") and body is not None:
                target = body.get("items", body)
                if "$ref" not in target:
                    loose.append((name, status, body))
    assert loose == []


def test_every_error_status_has_the_error_shape(schema):
    for name, operation in operations(schema):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                body = response["content"]["application/json"]["schema"]
                shape = body["$ref"].rsplit("/", 1)[-1]
                assert shape in ("ErrorOutput", "AuthErrorOutput", "TooManyAttemptsOutput"), (name, status)


def test_common_statuses_are_documented(schema):
    for name, operation in operations(schema):
        statuses = set(operation["responses"])
        if operation.get("security") and {} not in operation["security"]:
            assert {"401", "403"} <= statuses, name
        if "{" in name:
            assert "404" in statuses, name
        if "requestBody" in operation:
            assert {"400", "415"} <= statuses, name


def test_every_input_object_refuses_unknown_fields(schema):
    for component, body in schema["components"]["schemas"].items():
        if component.endswith("Request") and body.get("type") == "object":
            assert body.get("additionalProperties") is False, component


def test_nullable_fields_are_marked(schema):
    components = schema["components"]["schemas"]
    assert components["EventOutput"]["properties"]["actor"]["nullable"] is True
    for field in ("queued_at", "packaged_at"):
        assert components["GovernanceExportOutput"]["properties"][field]["nullable"] is True
    assert components["TemplateOutput"]["properties"]["created_by"]["nullable"] is True


def test_list_posts_answer_arrays_and_take_one_object_or_a_list(schema):
    events = schema["paths"]["/api/experiment-console/sessions/{execution_id}/events"]["post"]
    assert events["responses"]["201"]["content"]["application/json"]["schema"]["type"] == "array"
    one, many = events["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert many["type"] == "array" and many["minItems"] == 1 and many["items"] == one
    listing = schema["paths"]["/api/experiment-console/sessions/{execution_id}/events"]["get"]
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page.endswith("PaginatedEventOutputList")


def test_operation_specific_statuses(schema):
    paths = schema["paths"]
    assert "429" in paths["/api/auth/token"]["post"]["responses"]
    approve = "/api/experiment-console/sessions/{execution_id}/exports/narrative/{export_id}/approve"
    assert {"403", "409"} <= set(paths[approve]["post"]["responses"])
    assert "409" in paths["/api/governance/exports/{export_id}/queue"]["post"]["responses"]
    assert "404" in paths["/api/governance/analytics"]["get"]["responses"]
