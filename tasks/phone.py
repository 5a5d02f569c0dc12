"""Tasks: phone number verification codes."""
