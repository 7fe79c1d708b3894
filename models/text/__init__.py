"""Text front of the analysis pipeline.

``models.text.normalize.normalize`` (model input), ``models.text.redact.redact`` (personal
data, before storage) and ``models.text.transliterate.tifinagh_to_latin`` (before encoding).
Import them from their modules: re-exporting ``redact``/``normalize`` here would shadow the
submodules of the same name (``import models.text.redact`` would yield the function).
"""
