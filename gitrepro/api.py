"""The public Python API: `gitrepro.load_config()`, `gitrepro.show("HEAD")`, ...

Each name is the operation itself, re-exported from its layer; docs/config.md and
docs/provenance.md document them. `import gitrepro` stays light: this module is
imported on the first attribute access (see `gitrepro.__getattr__`).
"""

from gitrepro.repro.config import load_config, resolve as resolve_config
from gitrepro.repro.provenance import api_diff as diff, api_lineage as lineage, api_log as log, api_show as show
from gitrepro.repro.reproduce import api_reproduce as reproduce
from gitrepro.repro.seeding import seed_everything

__all__ = ["load_config", "resolve_config", "seed_everything", "show", "log", "diff", "lineage", "reproduce"]
