"""Helpers the tests share: a real sshd, crash and fault helpers, sample data, small flows."""
