"""The API describes itself as OpenAPI 3.0, and its documentation page needs no CDN."""

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV30SpecValidator

from api.openapi import schema_to_30


def test_api_is_a_valid_openapi_30_document_with_every_route(demo_client):
    answer = demo_client.get("/api")
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.0.")
    validate(document, cls=OpenAPIV30SpecValidator)
    for path in ("/collections", "/collections/{collection_id}/items", "/query", "/uploads",
                 "/collections/{collection_id}/tiles/{tms}/{z}/{x}/{y}", "/conflicts/{check_id}"):
        assert path in document["paths"], path


def test_nullable_and_exclusive_bounds_are_written_the_30_way():
    assert schema_to_30({"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Limit"}) == {
        "type": "integer", "title": "Limit", "nullable": True}
    assert schema_to_30({"anyOf": [{"$ref": "#/c"}, {"type": "null"}]}) == {
        "allOf": [{"$ref": "#/c"}], "nullable": True}
    assert schema_to_30({"type": "number", "exclusiveMinimum": 0}) == {
        "type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert schema_to_30({"const": "a", "examples": ["a"]}) == {"enum": ["a"], "example": "a"}


def test_documentation_page_loads_swagger_ui_from_landeco(demo_client):
    page = demo_client.get("/api.html")
    assert page.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert demo_client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
