"""digitbot's ML side: MNIST training, LiteRT export and the photo recognizer.

Nothing here imports TensorFlow at package import time, so the bot process can use the
recognizer with LiteRT alone; only `model.train` (and the Keras fallback) loads TensorFlow.
"""

from pathlib import Path

RELEASE_DIR = Path(__file__).resolve().parent / "release"
