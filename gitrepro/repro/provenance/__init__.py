"""Provenance of training commits, read from git objects and the local store (never the working
tree): `records` (which commits are training commits, their run records and resolved configs),
`manifests` (manifests and chunks of the local store, the file diff of two manifests), and one
module per operation: `show`, `log`, `diff` and `lineage`. See docs/provenance.md.

The operations return data; gitrepro.cli.render renders it, and gitrepro.api serves them as
`gitrepro.show()`, `log()`, `diff()` and `lineage()`.
"""
