"""The `es-compact` command (installed as the package es_compact_cli)."""
