"""Forward time of the generator on the JAX backend (the GPU machine has no TensorFlow).

    KERAS_BACKEND=jax python bench/jax_forward.py --sizes 512,1024,2048 --weights W.npz

One jitted ``stateless_call`` per size, batch 1, a centred 25% hole; median of ``--repeats``
timed calls after a warm-up (compilation), each ended by ``block_until_ready``. The paper's
Table 2 times the network at 512, 1024 and 2048 (with CRA): 25 / 37 / 87 ms on a GTX 1080 Ti.
Prints one JSON line per size and precision.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def time_forward(generator, size, repeats, dtype):
    import jax
    import numpy as np

    image = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    mask = np.zeros((1, size, size, 1), np.float32)
    mask[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 1.0
    tv = [v.value for v in generator.trainable_variables]
    ntv = [v.value for v in generator.non_trainable_variables]
    forward = jax.jit(lambda tv, ntv, x, m: generator.stateless_call(tv, ntv, x, m)[0]["inpainted"])
    started = time.perf_counter()
    forward(tv, ntv, image, mask).block_until_ready()
    compile_seconds = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward(tv, ntv, image, mask).block_until_ready()
        times.append(time.perf_counter() - started)
    return dict(size=size, dtype=dtype, median_ms=1e3 * statistics.median(times),
                min_ms=1e3 * min(times), compile_s=compile_seconds, repeats=repeats,
                device=str(jax.devices()[0].device_kind))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,1024,2048")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--weights", default=None, help="generator .npz (default: random)")
    parser.add_argument("--precisions", default="float32,bfloat16")
    arguments = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    from hifill_tf.models.generator import Generator
    from hifill_tf.weights import load_generator_weights

    for precision in arguments.precisions.split(","):
        keras.mixed_precision.set_global_policy(
            "mixed_bfloat16" if precision == "bfloat16" else "float32")
        generator = Generator()
        generator.build()
        if arguments.weights:
            load_generator_weights(generator, arguments.weights)
        for size in (int(s) for s in arguments.sizes.split(",")):
            print(json.dumps(time_forward(generator, size, arguments.repeats, precision)),
                  flush=True)


if __name__ == "__main__":
    main()
