"""leadflow: the installable face of the project — settings and the `leadflow` command.

The business code lives in the top-level packages the design card names (ledger/, blocks/,
data_quality/, tasks/, flows/, webhooks/, deployments/, sandbox/); this package only holds
configuration (which every part may read) and the command line that drives them.
"""

__version__ = "0.1.0"
