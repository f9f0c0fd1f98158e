"""Regenerate docs/configuration.md from the config tree's field descriptions: `python scripts/gen_config_doc.py`."""

from pathlib import Path

from scalequest.config import explain

HEADER = """# Configuration reference

One YAML file (`--config path` or a packaged name: `tiny`, `paper`) plus dotted overrides
(`num_candidates=500`, `generators.0.share=0.3`, `models.qwen.replicas=4`; values are parsed as YAML). Unknown keys
and bad values fail before Ray starts, naming the key and the fix. Generated from `scalequest/config.py` by
`python scripts/gen_config_doc.py` (the same text as `scalequest validate --explain`).

```
"""

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    out.write_text(HEADER + "\n".join(explain()) + "\n```\n")
    print(out)
