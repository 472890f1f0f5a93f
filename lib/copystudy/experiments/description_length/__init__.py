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
        ("prefix_models_stopped_early", "prefix models stopped early", "pct"),
        ("prequential_roundtrip_exact", "prequential stream decodes exactly", "bool"),
        ("memorized_bits_per_byte_per_doubling", "memorised bits/byte per doubling of copies", "+.3f"),
        ("capacity_bits_per_param", "capacity on random data, bits/parameter", ".2f")]


def rules(v: dict) -> str | None:
    if v["min_steps"] > v["max_steps"]:
        return f"min_steps={v['min_steps']} is larger than max_steps={v['max_steps']}"
    context = v["model"].get("context")
    if isinstance(context, int) and not models.is_pretrained(v["model"]) and v["first_block"] < 2 * (context + 1):
        return (f"first_block={v['first_block']} must be at least 2 x (model.context + 1) = {2 * (context + 1)} bytes: "
                "each prefix model holds out at least context + 1 bytes of its prefix to stop early")
    if v["memorization_models"] % 2:
        return f"memorization_models={v['memorization_models']} must be even: each work is in half of the models"
    if v["capacity_steps"][0] < 1:
        return "capacity_steps must be a range of at least 1 step"
    return None
