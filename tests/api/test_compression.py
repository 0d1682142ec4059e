"""Large answers travel compressed when the client accepts it, small ones as they are."""


def test_a_map_page_is_gzipped_for_clients_that_accept_it(demo_client):
    zipped = demo_client.get("/maps/villages", headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    plain = demo_client.get("/maps/villages", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(zipped.text) == len(plain.text) and "嘎查村" in zipped.text, "the page decodes whole"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 3


def test_a_small_answer_is_not_compressed(demo_client):
    health = demo_client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in health.headers
