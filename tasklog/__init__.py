"""The views: Task Log and Scheduled rows rendered as a rich table, text, CSV, JSON or xlsx.

The rows come from :mod:`runlog` (Prefect's run history); this package only shows them.
"""
