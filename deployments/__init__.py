"""How flows are served and scheduled: polling for leads, the reconciler, webhook-triggered runs."""
