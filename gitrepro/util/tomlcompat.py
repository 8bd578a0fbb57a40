"""The TOML reader adapter: tomllib on Python >= 3.11, the identical `tomli` backport on 3.10.

tomllib is imported on the first `loads`, not with this module, so modules on the
start-up path of `status` and the hooks can import this one at the top for free.
"""

from __future__ import annotations

from gitrepro.errors import GitreproError


class TomlError(GitreproError):
    """Text that is not valid TOML (tomllib's TOMLDecodeError, same message)."""


def loads(text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TomlError(str(e)) from None
