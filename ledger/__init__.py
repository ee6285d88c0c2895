"""The ledger: leadflow's source of truth (DESIGN.md, principle 1)."""
