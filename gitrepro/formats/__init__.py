"""The formats layer: every on-disk format gitrepro reads or writes, as pure code (bytes and file
objects in, values out; no paths, no processes).

`hashing` (BLAKE3 ids), `chunker` (FastCDC; the pyfastcdc adapter), `pack` (packs, `spans`, and the
zstandard adapter), `manifest` (snapshots and the manifest root), `pointer` (`<dataset>.gitrepro`),
`runrecord` (`runs/<id>.toml`), `project` (`gitrepro.toml`). Each format is versioned in
docs/design.md. It may import gitrepro.util (and gitrepro.errors).
"""
