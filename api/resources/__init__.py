"""HTTP resources, one module per domain."""
