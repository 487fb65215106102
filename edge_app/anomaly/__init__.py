"""Visual anomaly inspection from a handful of normal images (stands in for Lookout for Vision)."""
