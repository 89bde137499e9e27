"""Open-vocabulary semantics: text encoders and label maps (pure torch, no ROS)."""
from lsm.semantics.labels import DEFAULT_LABELS, colorize, label_map, palette, query_mask, similarity
from lsm.semantics.text_encoder import (
                                  ClipTextEncoder,
                                  MiniLMTextEncoder,
                                  TextEncoder,
                                  build_text_encoder,
                                  validate_label,
)

__all__ = [
    "DEFAULT_LABELS", "colorize", "label_map", "palette", "query_mask", "similarity",
    "ClipTextEncoder", "MiniLMTextEncoder", "TextEncoder", "build_text_encoder", "validate_label",
]
