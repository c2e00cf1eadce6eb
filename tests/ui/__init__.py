"""Browser tests of the Prefect UI."""
