"""Time from pressing Inpaint to the result on the page of `python -m hifill_tf.app`, or of a
REST round trip.

    python bench/app_bench.py                       # 2048x1152 and 7680x4320 JPEGs
    python bench/app_bench.py --sizes 2048x1365,7680x4320 --repeats 3
    python bench/app_bench.py --rest --repeats 3    # POST /api/v1/inpaint with PNGs
    python bench/app_bench.py --rest --repeats 3 --sizes 7680x4320 --baseline /tmp/before

--rest: a client as IOPaint's: the photo as a PNG (lossless, the slow case) and a blob mask,
base64 in JSON, the filled PNG back. Reported: the round trip from sending the prepared body to
the last byte of the answer, the server's fill (X-Inpaint-Seconds) and the rest (JSON, base64,
decoding, encoding, transfer). --baseline: another checkout's server timed in turn with this
one's (`git worktree add /tmp/before COMMIT`), for a busy machine, where only ratios hold.

A person's session in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright;
`pip install -e '.[app,test]'`): start the server, open a photo, paint one stroke (about 2%
of the photo), press Inpaint, wait for the result and the download button, download. The
photo is the benchmark photo (bench/common.py) fitted to each size, saved as JPEG quality 95.
Reported: open (upload + preview shown), Inpaint -> result shown (the median of --repeats
runs, each with a fresh stroke), download; and that the download has the photo's size.
"""

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets the TF log level and sys.path)

sys.path.insert(0, os.path.join(common.REPO, "tests"))
import app_page  # noqa: E402  (the page driver the browser tests use)

from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["2048x1152", "7680x4320"], "Photo sizes WIDTHxHEIGHT.")
flags.DEFINE_integer("repeats", 1, "Timed runs per size (each paints a new stroke first).")
flags.DEFINE_string("weights", None, "Generator weights for the server (default: bundled).")
flags.DEFINE_integer("max_pixels", None, "Network pixel budget for the server.")
flags.DEFINE_bool("rest", False, "Time REST round trips (PNG in, PNG out) instead of the page.")
flags.DEFINE_string("baseline", None,
                    "With --rest: a source tree (a checkout of another commit) whose server is "
                    "timed too, request by request in turn with this tree's: both medians, their "
                    "ratio, and whether the answers have the same pixels.")


def rest_round_trip(url, body):
    """(seconds from sending `body` to the whole answer, server fill seconds, answer)."""
    import urllib.request

    tick = time.monotonic()
    request = urllib.request.Request(url + "api/v1/inpaint", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        content = response.read()
        fill = float(response.headers["X-Inpaint-Seconds"])
    return time.monotonic() - tick, fill, content


def rest_main(args, load_start):
    servers = {"this tree": app_page.Server(*args)}
    if FLAGS.baseline:
        servers["baseline"] = app_page.Server(*args, tree=FLAGS.baseline)
    rows, same = [], []
    try:
        for size in FLAGS.sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            array, _ = common.load_photo(width, height)
            body = common.rest_request(array).encode()
            answers = {name: rest_round_trip(server.url, body)[2]  # warm-up
                       for name, server in servers.items()}
            runs = {name: [] for name in servers}
            for _ in range(FLAGS.repeats):  # the servers in turn, so that both see the same load
                for name, server in servers.items():
                    runs[name].append(rest_round_trip(server.url, body))
            for name, timed in runs.items():
                rows.append(_rest_row(f"{width}x{height}", name, timed, runs.get("baseline")))
            if FLAGS.baseline:
                same.append(f"{width}x{height}: {_same_pixels(*answers.values())}")
    finally:
        for server in servers.values():
            server.stop()
    print("## REST: POST /api/v1/inpaint round trip, PNG in and out\n")
    extra = [f"server: {servers['this tree'].health['model']}, network "
             f"{servers['this tree'].health['network_size']}; one warm-up request, then "
             f"{FLAGS.repeats} timed"]
    if FLAGS.baseline:
        extra.append(f"baseline: the server of {FLAGS.baseline}, its requests in turn with this "
                     f"tree's; answers with the same pixels: {', '.join(same)}")
    print("\n".join(common.machine_lines(onednn=_onednn(), load_start=load_start, extra=extra)))
    print()
    header = ["photo (PNG)", "server", "round trip", "runs (s)", "fill", "rest", "result"]
    if FLAGS.baseline:
        header.append("vs baseline")
    print(common.markdown_table(header, rows))


def _rest_row(size, name, runs, baseline):
    total = statistics.median(r[0] for r in runs)
    fill = statistics.median(r[1] for r in runs)
    row = [size, name, common.fmt_seconds(total), ", ".join(f"{r[0]:.2f}" for r in runs),
           common.fmt_seconds(fill), common.fmt_seconds(total - fill),
           f"{len(runs[-1][2]) / 1e6:.1f} MB"]
    if baseline:
        row.append(f"{total / statistics.median(r[0] for r in baseline):.2f}x")
    return row


def _same_pixels(first, second):
    import io as _io

    import numpy as np

    arrays = [np.asarray(Image.open(_io.BytesIO(answer))) for answer in (first, second)]
    return "yes" if np.array_equal(*arrays) else "**NO**"


def _onednn():
    """The server's: `python -m hifill_tf.app` turns oneDNN off unless the variable is set."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0").lower() not in ("0", "false")


def main(argv):
    del argv
    load_start = os.getloadavg()
    args = []
    if FLAGS.weights:
        args += ["--weights", FLAGS.weights]
    if FLAGS.max_pixels:
        args += ["--max_pixels", FLAGS.max_pixels]
    if FLAGS.rest:
        return rest_main(args, load_start)
    rows = []
    with tempfile.TemporaryDirectory(prefix="app-bench-") as tmp:
        photos = []
        for size in FLAGS.sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            array, source = common.load_photo(width, height)
            path = os.path.join(tmp, f"photo-{width}x{height}.jpg")
            Image.fromarray(array).save(path, quality=95)
            photos.append((width, height, path, source))
        tick = time.monotonic()
        server = app_page.Server(*args)
        started = time.monotonic() - tick
        try:
            with app_page.browser() as browser:
                for width, height, path, source in photos:
                    page = app_page.AppPage(browser, server.url)
                    opened = page.upload(path)
                    runs = []
                    for n in range(FLAGS.repeats):
                        y = 0.3 + 0.1 * n
                        page.paint([(0.35, y), (0.45, y + 0.05), (0.55, y)])
                        runs.append(page.run())
                    tick = time.monotonic()
                    result = page.download(tmp)
                    downloaded = time.monotonic() - tick
                    with Image.open(result) as image:
                        ok = image.size == (width, height) and image.format == "JPEG"
                    status = page.status()
                    page.close()
                    rows.append([f"{width}x{height}", f"{os.path.getsize(path) / 1e6:.1f} MB",
                                 common.fmt_seconds(opened),
                                 common.fmt_seconds(statistics.median(runs)),
                                 ", ".join(f"{r:.1f}" for r in runs),
                                 common.fmt_seconds(downloaded), "yes" if ok else "**NO**"])
                    print(f"{width}x{height}: {status}", file=sys.stderr)
        finally:
            server.stop()
    print("## Page: Inpaint -> result, headless Chromium\n")
    print("\n".join(common.machine_lines(onednn=_onednn(), load_start=load_start, extra=[
        f"server: {server.health['model']}, network {server.health['network_size']}; "
        f"started (load + trace) in {started:.1f} s",
        f"browser: {app_page.CHROMIUM}, viewport {app_page.VIEWPORT['width']}x"
        f"{app_page.VIEWPORT['height']}"])))
    print()
    print(common.markdown_table(
        ["photo (JPEG q95)", "file", "open", "Inpaint -> result", "runs (s)", "download",
         "full size"], rows))


if __name__ == "__main__":
    app.run(main)
