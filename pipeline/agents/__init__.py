"""Faust agents: thin wiring that moves records between topics and the stage cores."""
