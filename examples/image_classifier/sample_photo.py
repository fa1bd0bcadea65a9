"""Write a real photograph to a JPEG file: scikit-learn ships china.jpg, so nothing is downloaded."""

import sys

from PIL import Image
from sklearn.datasets import load_sample_image

out = sys.argv[1] if len(sys.argv) > 1 else "photo.jpg"
Image.fromarray(load_sample_image("china.jpg")).save(out, quality=90)
print(f"wrote {out}")
