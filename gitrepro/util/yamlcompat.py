"""The YAML reader adapter: PyYAML's `safe_load` (plain data only: no tags that build Python
objects), imported on the first `loads`, behind a size bound. See docs/metrics.md, "Formats".

Metrics and params files are often YAML (`params.yaml`, DVC's habit); PyYAML is the one
dependency that reads them. A document's aliases can make it a graph that is far larger walked
than written, so callers bound the walk too (metrics.flatten counts the nodes it visits).
"""

from __future__ import annotations

from gitrepro.errors import GitreproError

MAX_CHARS = 1024 * 1024


class YamlError(GitreproError):
    """Text that is not YAML PyYAML's safe loader reads, or that is too big."""


def loads(text: str):
    if len(text) > MAX_CHARS:
        raise YamlError(f"more than {MAX_CHARS} characters")
    import yaml   # here: only a YAML file pays for the import

    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        raise YamlError(" ".join(str(e).split())[:200]) from None
