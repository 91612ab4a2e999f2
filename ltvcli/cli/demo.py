"""``ltv demo`` (filled in by the demo work)."""
