"""Synthetic packaging-line video with exact ground truth, and replay of video as live cameras."""
