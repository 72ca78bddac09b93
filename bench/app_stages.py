"""Where the time of an 8K REST request goes: the stages of `POST /api/v1/inpaint` in one
process, on the body `app_bench.py --rest` sends (`common.rest_request`).

    python bench/app_stages.py                              # 7680x4320, 5 requests
    python bench/app_stages.py --baseline /tmp/before       # and another checkout, in turn

Each request runs the route's own work, `rest.inpaint_request`, with the server's
`memory.configure_allocator` and `release_memory` after each: its stages, JSON and base64,
decoding the photo (the mask in a second thread), the fill and encoding the result, are told
apart by the calls it makes. Reported per stage: the median wall time
(min-max), CPU seconds (user + system) and page faults (minor, thousands): the faults are the
memory the stage touched afresh, which the machine's kernel zeroes. --baseline: the same steps
with another checkout's code (`git worktree add /tmp/before COMMIT`), in a process of its
own; the two trees' processes take turns, `--rounds` times.
"""

import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets the TF log level and sys.path)

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("size", "7680x4320", "Photo size WIDTHxHEIGHT.")
flags.DEFINE_integer("repeats", 5, "Timed requests per process (after one warm-up).")
flags.DEFINE_integer("rounds", 2, "Processes per tree, the trees in turn.")
flags.DEFINE_string("baseline", None, "Another checkout whose route is timed too.")
flags.DEFINE_string("worker", None, "Internal: time this tree's route and print JSON lines.")

STAGES = ["JSON + base64", "decode", "fill", "encode"]


def _usage():
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return [time.monotonic(), usage.ru_utime + usage.ru_stime, usage.ru_minflt]


class _Stages:
    """Marks the end of each stage of one `rest.inpaint_request` from the calls it makes: the
    mask's base64 decoded, the fill begun, the fill done, the answer returned."""

    def __init__(self, rest, service):
        self.rest, self.service, self.marks = rest, service, []
        self.decode_base64 = rest.decode_base64

    def __call__(self, rgb, mask, name=None):  # the service, as the route calls it
        self.marks.append(_usage())
        result = self.service(rgb, mask, name=name)
        self.marks.append(_usage())
        return result

    def _decoded(self, payload, field):
        data = self.decode_base64(payload, field)
        if field == "mask":
            self.marks.append(_usage())
        return data

    def request(self, body):
        """[[wall, cpu, faults]] of each stage of the route's work on `body`."""
        self.marks = [_usage()]
        self.rest.decode_base64 = self._decoded
        try:
            self.rest.inpaint_request(self, body, _Ticket())
        finally:
            self.rest.decode_base64 = self.decode_base64
        self.marks.append(_usage())
        return [[b - a for a, b in zip(first, second)]
                for first, second in zip(self.marks, self.marks[1:])]


class _Ticket:
    def grow(self, nbytes, what=None):  # no budget: nothing else runs
        pass


def worker(tree):
    sys.path.insert(0, tree)  # this tree's hifill_tf, not common's
    from hifill_tf.app import memory, rest
    from hifill_tf.app.service import Inpainting

    memory.configure_allocator()
    width, height = (int(v) for v in FLAGS.size.lower().split("x"))
    body = common.rest_request(common.load_photo(width, height)[0]).encode()
    stages = _Stages(rest, Inpainting.load())
    for n in range(FLAGS.repeats + 1):
        timed = stages.request(body)
        memory.release_memory()
        if n:  # the first is a warm-up
            print(json.dumps(timed), flush=True)


def _run_worker(tree):
    env = dict(os.environ, PYTHONPATH=tree, TF_ENABLE_ONEDNN_OPTS="0")  # as the server runs
    command = [sys.executable, os.path.abspath(__file__), "--worker", tree, "--size", FLAGS.size,
               "--repeats", str(FLAGS.repeats)]
    output = subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True,
                            text=True).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("[")]


def _cell(values, unit):
    middle = statistics.median(values)
    if unit == "s":
        return f"{middle:.2f} s ({min(values):.2f}-{max(values):.2f})"
    return f"{middle / 1000:.0f}k"


def main(argv):
    del argv
    if FLAGS.worker:
        return worker(FLAGS.worker)
    load_start = os.getloadavg()
    trees = {"this tree": common.REPO}
    if FLAGS.baseline:
        trees["baseline"] = os.path.abspath(FLAGS.baseline)
    requests = {name: [] for name in trees}
    for _ in range(FLAGS.rounds):
        for name, tree in trees.items():
            requests[name] += _run_worker(tree)
    rows = []
    for name, timed in requests.items():
        for i, stage in enumerate(STAGES + ["in all"]):
            pick = (lambda r, k: r[i][k]) if i < len(STAGES) else \
                (lambda r, k: sum(s[k] for s in r))
            rows.append([stage, name, _cell([pick(r, 0) for r in timed], "s"),
                         f"{statistics.median(pick(r, 1) for r in timed):.2f} s",
                         _cell([pick(r, 2) for r in timed], "k")])
    print(f"## The REST route's stages in one process, {FLAGS.size} PNG\n")
    extra = [f"{FLAGS.rounds} process(es) per tree, in turn, each one warm-up and "
             f"{FLAGS.repeats} timed requests; the server's allocator settings; oneDNN off"]
    if FLAGS.baseline:
        extra.append(f"baseline: the code of {FLAGS.baseline}")
    print("\n".join(common.machine_lines(onednn=False, load_start=load_start, extra=extra)))
    print()
    print(common.markdown_table(["stage", "code", "wall, median (min-max)", "CPU (user + sys)",
                                 "page faults"], rows))


if __name__ == "__main__":
    app.run(main)
