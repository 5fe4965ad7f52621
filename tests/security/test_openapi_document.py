"""The OpenAPI document describes errors as they are sent."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_every_error_status_of_every_operation_has_the_one_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "503" in responses, (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)
    r = client.post("/api/login", json={"login": ""})
    assert r.status_code == 422 and set(r.json()) == {"error"} and r.json()["error"]["fields"]
