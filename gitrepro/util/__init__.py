"""The util layer: filesystem safety and process helpers that know nothing of gitrepro's data.

`fsutil` (atomic writes, directory fsync, joins that never escape a root, the one path check),
`directio` (writing large files around the page cache), `forkpool` (tasks shared out to forked
workers), `tomlcompat` (the TOML reader adapter), `version` (the release), `words` (counted
nouns in messages: `1 file`). It imports nothing
from gitrepro but gitrepro.errors.
"""
