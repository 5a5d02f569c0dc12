"""Adapters to the outside world: one small interface each, a production and a dev/test backend."""
