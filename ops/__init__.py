"""Running Hearth: the ``hearth`` command, the development process supervisor, embedded dev services."""
