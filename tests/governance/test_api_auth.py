import pytest

from tests.factories import PASSWORD


@pytest.mark.django_db
def test_token_for_valid_credentials_authenticates_later_requests(api_client, scientist, execution):
    response = api_client.post("/api/auth/token", {"username": "sci", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    listing = api_client.get("/api/experiment-console/sessions")
    assert listing.status_code == 200
    assert [row["id"] for row in listing.json()["results"]] == [execution.pk]


@pytest.mark.django_db
def test_wrong_password_is_401_in_the_error_shape(api_client, scientist):
    response = api_client.post("/api/auth/token", {"username": "sci", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.django_db
def test_malformed_json_is_400_malformed_request(api_client):
    response = api_client.generic("POST", "/api/auth/token", "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "malformed_request"
    assert set(body["error"]) == {"code", "message", "details"}


@pytest.mark.django_db
def test_missing_fields_give_field_details(api_client):
    response = api_client.post("/api/auth/token", {"username": 5}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()["error"]["details"]["fields"]


@pytest.mark.django_db
def test_anonymous_requests_are_401(api_client):
    response = api_client.get("/api/experiment-console/sessions")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.django_db
def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_schema_and_docs_render(client, scientist):
    client.force_login(scientist)
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
