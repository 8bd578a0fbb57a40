"""worktree layer."""
