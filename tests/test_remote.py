"""The shared URL / base64 image fetcher and its SSRF rules, against a local HTTP server."""

import base64

import pytest

from inpainting.remote import RemoteInputError, fetch_url, image_input_bytes
from tests.live import PNG


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://localhost/",
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(url):
    with pytest.raises(RemoteInputError, match="private or local address"):
        fetch_url(url, field="init_image")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "gopher://127.0.0.1/"]
)
def test_non_http_schemes_are_refused(url):
    with pytest.raises(RemoteInputError, match="must be http or https"):
        image_input_bytes(url, field="init_image")


def test_loopback_is_refused_by_default_even_for_our_own_server(local_server):
    with pytest.raises(RemoteInputError, match="private or local"):
        fetch_url(f"{local_server}/image.png", field="image")


def test_with_private_allowed_images_and_safe_redirects_load(local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    assert fetch_url(f"{local_server}/image.png", field="image") == PNG
    assert fetch_url(f"{local_server}/redirect-ok", field="image") == PNG


def test_a_redirect_to_link_local_is_refused_even_when_private_is_allowed(local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    with pytest.raises(RemoteInputError, match="private or local"):
        fetch_url(f"{local_server}/redirect-private", field="image")
    with pytest.raises(RemoteInputError, match="http or https"):
        fetch_url(f"{local_server}/redirect-file", field="image")


def test_oversized_bodies_and_errors(local_server, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    with pytest.raises(RemoteInputError, match="larger than 10 MB"):
        fetch_url(f"{local_server}/big", field="image")
    with pytest.raises(RemoteInputError, match="answered 404"):
        fetch_url(f"{local_server}/missing", field="image")


def test_base64_and_data_urls():
    encoded = base64.b64encode(PNG).decode()
    assert image_input_bytes(encoded, field="image") == PNG
    assert image_input_bytes("data:image/png;base64," + encoded, field="image") == PNG
    assert image_input_bytes(encoded.rstrip("="), field="image") == PNG  # missing padding
    with pytest.raises(RemoteInputError, match="URL, a data URL or base64"):
        image_input_bytes("this is not base64!", field="image")
    with pytest.raises(RemoteInputError, match="required"):
        image_input_bytes("", field="image")
