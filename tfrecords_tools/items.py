"""Re-export of `fbn_keras.records.items` (the parser→writer contract moved into the library)."""

from fbn_keras.records.items import SPLITS, Item, ParsedItem, Skip, SkipError  # noqa: F401

__all__ = ["SPLITS", "Item", "ParsedItem", "Skip", "SkipError"]
