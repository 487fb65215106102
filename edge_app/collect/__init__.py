"""Frame collection for the data flywheel: sample a stream, drop near-duplicates, spool, upload to S3.

`FrameCollector` (interval + perceptual hash + ROI mask) writes into a `Spool`; an `Uploader` drains the
spool to S3. Used by ``edge-app collect`` and, through the same class, by the Panorama node.
"""
