"""What the loop has recorded, read back: the status, the per-batch table, the figures."""
