"""The `cctasks` command line: the only package that imports the flows and deployments."""
