"""A generation's files as people get them: the regenerated area in one convention whatever
the mask's polarity, and downloads named for people, from the data folder and from an S3 bucket."""

import io
from datetime import timedelta

import boto3
import numpy as np
import pytest
from django.utils import timezone
from moto import mock_aws
from PIL import Image
from storages.backends.s3 import S3Storage

from inpainting.engine.compose import REGENERATED_OPACITY, REGENERATED_TINT
from inpainting.models import Generation
from inpainting.services import retention, runs
from tests.helpers import BOX, H, W, image_png, post_img2img
from tests.images import box_mask, gradient, png_bytes

pytestmark = pytest.mark.django_db


def submit(client, mask: bytes | None = None, **fields) -> Generation:
    response = post_img2img(client, image_png(), mask, wait="false", **fields)
    assert response.status_code == 202, response.content
    return Generation.objects.get(pk=response.json()["id"])


def regenerated(client, generation: Generation) -> np.ndarray:
    response = client.get(f"/api/generations/{generation.pk}/regenerated.png")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    image = Image.open(io.BytesIO(body))
    assert image.mode == "RGB"
    return np.asarray(image)


def tinted(pixels: np.ndarray, alpha: float = REGENERATED_OPACITY) -> np.ndarray:
    """What the studio's overlay rgba(255, 32, 80, 0.55) makes of ``pixels``."""
    red = np.array(REGENERATED_TINT, np.float64)
    return pixels.astype(np.float64) * (1 - alpha) + red * alpha


WHITE_BOX = png_bytes(box_mask(W, H, BOX, inpaint_white=True))  # how the studio draws
BLACK_BOX = png_bytes(box_mask(W, H, BOX, inpaint_white=False))  # the documented upload


def test_drawn_and_uploaded_masks_of_one_box_give_one_picture(api):
    drawn = submit(api, WHITE_BOX, mask_mode="white_inpaints", mask_blur=0)
    uploaded = submit(api, BLACK_BOX, mask_mode="black_inpaints", mask_blur=0)
    # A white box in black_inpaints keeps the box; invert makes the box the regenerated part.
    inverted = submit(api, WHITE_BOX, mask_mode="black_inpaints", invert_mask="true", mask_blur=0)
    pictures = [regenerated(api, g) for g in (drawn, uploaded, inverted)]
    assert np.array_equal(pictures[0], pictures[1])
    assert np.array_equal(pictures[0], pictures[2])

    picture, original = pictures[0], np.asarray(gradient(W, H))
    assert picture.shape == (H, W, 3)
    x0, y0, x1, y1 = BOX
    inside = np.zeros((H, W), bool)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    assert np.abs(picture[inside] - tinted(original[inside])).max() <= 1
    assert np.array_equal(picture[~inside], original[~inside])  # untouched, byte for byte


def test_the_feather_shows_as_a_fading_tint(api):
    picture = regenerated(api, submit(api, BLACK_BOX, mask_blur=8))
    original = np.asarray(gradient(W, H)).astype(np.float64)
    x0, y0, x1, y1 = BOX
    row = (y0 + y1) // 2
    red_share = [
        (picture[row, x, 0] - original[row, x, 0]) / (255 - original[row, x, 0])
        for x in (x1 - 1, x1 + 2, x1 + 5, x1 + 9)
    ]
    assert abs(red_share[0] - REGENERATED_OPACITY) < 0.01  # inside: fully tinted
    assert red_share[0] > red_share[1] > red_share[2] > 0  # the feather fades outward
    assert red_share[3] == 0  # beyond the blur: untouched


def test_an_outpaint_canvas_is_larger_and_its_new_area_tinted(api):
    generation = submit(api, outpaint='{"left": 16, "top": 8}', mask_blur=0)
    picture = regenerated(api, generation)
    assert picture.shape == (H + 8, W + 16, 3)
    original = np.asarray(gradient(W, H))
    assert np.array_equal(picture[8:, 16:], original)  # the input, where it was placed
    new_area = np.ones(picture.shape[:2], bool)
    new_area[8:, 16:] = False
    black = np.zeros((int(new_area.sum()), 3))
    assert np.abs(picture[new_area] - tinted(black)).max() <= 1  # nothing there yet: dark red


def test_only_the_owner_and_staff_see_it(api, other_api, staff_api):
    generation = submit(api, BLACK_BOX)
    url = f"/api/generations/{generation.pk}/regenerated.png"
    response = other_api.get(url)
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert staff_api.get(url).status_code == 200
    detail = api.get(f"/api/generations/{generation.pk}/").json()
    assert detail["regenerated_image"] == f"http://testserver{url}"


def disposition(response) -> str:
    return response["Content-Disposition"]


def test_downloads_are_named_for_people(api):
    generation = submit(
        api, BLACK_BOX, prompt="A red barn, in the snow at dusk; oil painting!", seed=1234
    )
    runs.generation_run(generation_id=str(generation.pk))  # what the worker calls
    base = f"/api/generations/{generation.pk}"
    output = api.get(f"{base}/images/0.png")
    assert output.status_code == 200
    stem = "dreamlayer-a-red-barn-in-the-snow-at-dusk-oil"  # 40 characters of words at most
    assert disposition(output) == f'inline; filename="{stem}-1234.png"'
    assert disposition(api.get(f"{base}/input.png")) == f'inline; filename="{stem}-input.png"'
    assert disposition(api.get(f"{base}/mask.png")) == f'inline; filename="{stem}-mask.png"'
    regenerated = api.get(f"{base}/regenerated.png")
    assert disposition(regenerated) == f'inline; filename="{stem}-regenerated.png"'


@pytest.mark.parametrize(
    "fields,name",
    [
        ({"prompt": ""}, "dreamlayer-removal-7.png"),
        ({"prompt": "", "outpaint": '{"right": 8}'}, "dreamlayer-outpaint-7.png"),
        ({"prompt": "  Sunlit   ÉCOLE  "}, "dreamlayer-sunlit-école-7.png"),
        ({"prompt": "a " + "very" * 20 + " long word"}, "dreamlayer-a-7.png"),
        ({"prompt": "supercalifragilistic" * 3}, f"dreamlayer-{'supercalifragilistic' * 2}-7.png"),
        ({"prompt": "!!! ???"}, "dreamlayer-removal-7.png"),
    ],
)
def test_the_name_of_an_output(api, fields, name):
    generation = submit(api, BLACK_BOX, **fields)
    assert generation.file_name(7) == name


def test_a_name_beyond_ascii_is_encoded_in_the_header(api):
    generation = submit(api, BLACK_BOX, prompt="猫 on a sofa")
    response = api.get(f"/api/generations/{generation.pk}/input.png")
    assert (
        disposition(response) == "inline; filename*=utf-8''dreamlayer-%E7%8C%AB-on-a-sofa-input.png"
    )


@pytest.fixture
def s3_storage(settings):
    """Media in an S3 bucket (moto's in-process S3): the settings a deployment sets."""
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="dreamlayer-test")
        settings.AWS_STORAGE_BUCKET_NAME = "dreamlayer-test"
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "dreamlayer-test",
                    "region_name": "us-east-1",
                    "access_key": "AKIDEXAMPLE",
                    "secret_key": "not-a-secret",
                    "default_acl": "private",
                    "file_overwrite": False,
                },
            },
        }
        yield boto3.client("s3", region_name="us-east-1")


def bucket_keys(s3) -> set[str]:
    listing = s3.list_objects_v2(Bucket="dreamlayer-test")
    return {item["Key"] for item in listing.get("Contents", [])}


def test_files_in_s3_stream_through_the_server_with_its_headers(
    api, s3_storage, django_capture_on_commit_callbacks
):
    """With S3 storage the uploads land in the bucket and every download is streamed by the
    permission-checking view (no redirect to the bucket, docs/adr/0006): the same bytes, name
    and headers as from the data folder; deleting the generation empties the bucket."""
    generation = submit(api, BLACK_BOX, prompt="a red barn")
    assert isinstance(Generation.objects.get(pk=generation.pk).source.file.storage, S3Storage)
    keys = bucket_keys(s3_storage)
    assert generation.source.file.name in keys and generation.mask.file.name in keys
    stored = s3_storage.get_object(Bucket="dreamlayer-test", Key=generation.source.file.name)
    response = api.get(f"/api/generations/{generation.pk}/input.png")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored["Body"].read()
    assert disposition(response) == 'inline; filename="dreamlayer-a-red-barn-input.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    thumbnail = api.get(f"/api/generations/{generation.pk}/mask-thumbnail.png")
    key = generation.mask.thumbnail.name
    assert (
        b"".join(thumbnail.streaming_content)
        == s3_storage.get_object(Bucket="dreamlayer-test", Key=key)["Body"].read()
    )
    with django_capture_on_commit_callbacks(execute=True):  # django-cleanup deletes on commit
        assert api.delete(f"/api/generations/{generation.pk}/").status_code == 204
    assert bucket_keys(s3_storage) == set()


def test_a_derived_picture_and_a_retention_run_on_s3(
    api, s3_storage, settings, django_capture_on_commit_callbacks
):
    """Issue 52 on S3: the regenerated-area picture is made once into the bucket and served
    from it; a retention run deletes the old job's every key, its derived picture included."""
    generation = submit(api, BLACK_BOX, prompt="a red barn")
    first = api.get(f"/api/generations/{generation.pk}/regenerated.png")
    made = b"".join(first.streaming_content)
    derived = generation.derived.get(kind="regenerated")
    assert derived.file.name in bucket_keys(s3_storage)
    body = s3_storage.get_object(Bucket="dreamlayer-test", Key=derived.file.name)["Body"].read()
    assert (
        body
        == made
        == b"".join(api.get(f"/api/generations/{generation.pk}/regenerated.png").streaming_content)
    )
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.CANCELLED, finished_at=timezone.now() - timedelta(days=9)
    )
    settings.RETENTION_DAYS = 7
    with django_capture_on_commit_callbacks(execute=True):  # django-cleanup deletes on commit
        assert retention.retention_run()["deleted"] == 1
    assert bucket_keys(s3_storage) == set()
