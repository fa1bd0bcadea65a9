"""Shared fixtures: test inputs made here (Pillow, scikit-learn's bundled photos), never downloaded."""

from __future__ import annotations

import io

import pytest
from PIL import Image


def jpeg_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    """A real photograph that ships with scikit-learn (china.jpg), resized to a handy size."""
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image("china.jpg")).resize((320, 213))
    return jpeg_bytes(image)
