"""Hearth's data: peewee models, one module per domain, and the rules that belong to the data."""
