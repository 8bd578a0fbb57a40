"""The command line: parse arguments, call one operation, render the result.

`app` is the typer entry (`main`) with the COMMANDS table naming each command's module, imported
when the command runs — the one lazy-import boundary; `fast` answers the constant commands
(`status`, a no-op `add`, `hook-impl`) before typer loads; `render` holds all plain text, Markdown,
Mermaid and DOT rendering; `common` the consoles, --json and progress bars; one module per command
group (`core`, `checkout`, `config`, `provenance`, `remote`, `run`, `verify`). It may import every layer.
"""
