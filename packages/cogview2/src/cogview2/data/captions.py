"""Caption templates: compose English and Chinese captions from a sample's raw fields.

The manifest keeps the raw fields (``name_en``, ``name_zh``, ``keywords_en``,
``keywords_zh``, ``style``), so training code may compose captions its own way; these
templates are the documented defaults.

========================  ==========================================  ==========================
template                  English                                     Chinese
========================  ==========================================  ==========================
``name_style`` (default)  ``red apple, twemoji style``                ``红苹果，twemoji风格``
``name``                  ``red apple``                               ``红苹果``
``name_keywords_style``   ``red apple, apple, diet, twemoji style``   ``红苹果，健康，水果，twemoji风格``
========================  ==========================================  ==========================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["CAPTION_TEMPLATES", "DEFAULT_TEMPLATE", "make_caption"]

CAPTION_TEMPLATES: dict[str, dict[str, str]] = {
    "name_style": {"en": "{name}, {style} style", "zh": "{name}，{style}风格"},
    "name": {"en": "{name}", "zh": "{name}"},
    "name_keywords_style": {
        "en": "{name}, {keywords}, {style} style",
        "zh": "{name}，{keywords}，{style}风格",
    },
}
"""template name -> language -> ``str.format`` pattern over ``name``, ``keywords``, ``style``."""

DEFAULT_TEMPLATE = "name_style"
_KEYWORD_SEPARATOR = {"en": ", ", "zh": "，"}


def make_caption(
    record: Mapping[str, Any],
    lang: Literal["en", "zh"],
    template: str = DEFAULT_TEMPLATE,
    *,
    max_keywords: int = 2,
) -> str:
    """Compose one caption from a sample record.

    Args:
        record: a manifest record with ``name_<lang>``, ``keywords_<lang>`` and ``style``.
        lang: ``"en"`` or ``"zh"``.
        template: a key of :data:`CAPTION_TEMPLATES`.
        max_keywords: how many keywords (in stored order) ``name_keywords_style`` uses.

    Returns:
        The caption, e.g. ``"red apple, twemoji style"`` / ``"红苹果，twemoji风格"``.

    Raises:
        ValueError: unknown ``lang`` or ``template``, or ``max_keywords`` < 0.
    """
    if template not in CAPTION_TEMPLATES:
        raise ValueError(f"unknown caption template {template!r}; known: {list(CAPTION_TEMPLATES)}")
    if lang not in _KEYWORD_SEPARATOR:
        raise ValueError(f"lang must be 'en' or 'zh', got {lang!r}")
    if max_keywords < 0:
        raise ValueError(f"max_keywords must be >= 0, got {max_keywords}")
    keywords: Sequence[str] = record[f"keywords_{lang}"][:max_keywords]
    pattern = CAPTION_TEMPLATES[template][lang]
    if not keywords:
        pattern = pattern.replace(", {keywords}", "").replace("，{keywords}", "")
    return pattern.format(
        name=record[f"name_{lang}"],
        keywords=_KEYWORD_SEPARATOR[lang].join(keywords),
        style=record["style"],
    )
