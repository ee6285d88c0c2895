"""Stateful emulators of every vendor API on loopback: leadflow's embedded default."""
