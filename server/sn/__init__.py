"""The service node (SN): the HTTP API over the data nodes."""
