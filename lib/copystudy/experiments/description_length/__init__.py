"""Notebook 02, description length: how many bits of the training text do the weights hold?

What the runner and the site need to know, without importing torch: `rules` (parameters that must
agree, checked before the kernel starts) and `HEADLINES` (the numbers the site shows). The notebook's
cells call `steps` (the experiment), its summary (`summarize`, `verdicts`) and `figures`.
"""

from __future__ import annotations

from copystudy import models

# (metrics key, label, format) of the numbers the site shows; a key missing from a run is skipped
HEADLINES = [("prequential_bits_per_byte", "prequential code, bits/byte", ".3f"),
        ("two_part_bits_per_byte", "best two-part code, bits/byte", ".3f"),
        ("prequential_roundtrip_exact", "prequential stream decodes exactly", "bool"),
        ("memorized_bits_duplicated_work", "memorised bits, duplicated work", ",.0f")]


def rules(v: dict) -> str | None:
    if v["min_steps"] > v["max_steps"]:
        return f"min_steps={v['min_steps']} is larger than max_steps={v['max_steps']}"
    context = v["model"].get("context")
    if isinstance(context, int) and not models.is_pretrained(v["model"]) and v["first_block"] < 2 * (context + 1):
        return (f"first_block={v['first_block']} must be at least 2 x (model.context + 1) = {2 * (context + 1)} bytes: "
                "each prefix model holds out at least context + 1 bytes of its prefix to stop early")
    return None
