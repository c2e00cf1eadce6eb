"""The five task types, one flow module each."""
