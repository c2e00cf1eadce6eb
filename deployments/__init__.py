"""Deployment glue: bootstrap and the embedded all-in-one runner behind `make up`."""
