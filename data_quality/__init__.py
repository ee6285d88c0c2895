"""The data-quality gate: normalise leads, validate them with Great Expectations, quarantine the bad."""
