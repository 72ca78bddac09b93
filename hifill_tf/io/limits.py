"""The largest photo accepted, in pixels.

16K x 8K is 134 Mpx; 300 Mpx leaves room for panoramas while still stopping a decompression
bomb (a 300 Mpx RGB array is 0.9 GB). Read at call time, so a user with the memory can raise
it: ``hifill_tf.io.limits.MAX_PHOTO_PIXELS = 600_000_000``.
"""

MAX_PHOTO_PIXELS = 300_000_000
