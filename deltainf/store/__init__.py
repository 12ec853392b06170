"""Storage: the content-addressed cache of every heavy stage, and model weights in and out."""
from .cache import Entry, Store, array_fingerprint, content_key

__all__ = ["Entry", "Store", "array_fingerprint", "content_key"]
