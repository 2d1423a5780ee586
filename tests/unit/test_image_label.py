"""A valid ``version`` label value from any image reference (module_utils/labels.py and its filter)."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.machinenativeops.platform.plugins.filter.image_label import FilterModule
from ansible_collections.machinenativeops.platform.plugins.module_utils import labels as L

HEX = "0123456789abcdef" * 4  # 64 hex characters, a sha256 digest
LONG_TAG = "A" + "b.-_" * 31 + "z"  # 126 characters, the longest kind of valid tag (128 max) with odd characters

CASES = [
    ("example/reviews:2.0.0", "2.0.0"),
    ("example/reviews", "latest"),
    ("registry.example.com:5000/team/reviews", "latest"),
    ("registry.example.com:5000/team/reviews:1.2", "1.2"),
    ("example/reviews@sha256:" + HEX, "sha256-0123456789ab"),
    ("example/reviews:2.0.0@sha256:" + HEX, "2.0.0-0123456789ab"),
    ("localhost:5000/reviews:_rc1-", "rc1"),
]


@pytest.mark.parametrize(("image", "value"), CASES)
def test_image_label_value(image, value):
    assert L.image_label_value(image) == value
    assert L.is_label_value(value)


@pytest.mark.parametrize("image", [
    "example/reviews:" + LONG_TAG,
    "example/reviews:" + LONG_TAG + "@sha256:" + HEX,
    "r.example.com:443/a/b/c@sha512:" + HEX * 2,
    "example/reviews:" + "9" * 128,
])
def test_longest_and_oddest_references_give_valid_values(image):
    value = L.image_label_value(image)
    assert L.is_label_value(value) and value
    assert len(value) <= 63


def test_different_long_tags_stay_distinct():
    a = L.image_label_value("r:" + "x" * 70 + "1")
    b = L.image_label_value("r:" + "x" * 70 + "2")
    assert a != b and len(a) == len(b) == 63


def test_filter():
    filters = FilterModule().filters()
    assert filters["image_label_value"]("example/reviews@sha256:" + HEX) == "sha256-0123456789ab"
    assert filters["label_value"]("-a:b-") == "a-b"
    with pytest.raises(AnsibleFilterError, match="image reference is empty"):
        filters["image_label_value"]("")
