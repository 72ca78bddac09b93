"""One-off: the first-generation default weights (6 K3S1C64 after K3S2C64, index-only layer
names) into the appendix-exact generator (5 of them, names with the layer token). The extra
layer (old coarse index 8) is dropped; every other layer keeps its trained weights."""
import re, sys
import numpy as np
from hifill_tf.models.generator import Generator
from hifill_tf.weights import save_generator_weights, _key

old = np.load(sys.argv[1])
g = Generator(); g.build()
def old_name(new):
    layer, rest = new.split("/", 1)
    m = re.match(r"(.+)_(\d+)(?:_k\w+)?$", layer)
    prefix, i = m.group(1), int(m.group(2))
    if prefix == "coarse" and i >= 8:
        i += 1
    return f"{prefix}_{i}/{rest}"
used = set()
for v in g.weights:
    k = old_name(_key(v)); used.add(k)
    assert tuple(old[k].shape) == tuple(v.shape), (k, old[k].shape, v.shape)
    v.assign(old[k].astype(np.float32))
print("unused:", sorted(set(old.files) - used))
save_generator_weights(g, sys.argv[2], network_pixels=256 * 256)
