"""Prefect run history as the seed's two views (Task Log, Scheduled), and the `cctasks` CLI."""
