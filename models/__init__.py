"""Model conversion, training and set-up scripts (run from the repository root)."""
