"""``ltv ingest ...``: one subcommand per source (filled in by the ingest work)."""
