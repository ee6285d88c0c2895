"""One module per emulated vendor; each exposes VENDOR, DEFAULT_CREDENTIALS and build_router()."""
