"""`python -m hifill_tf.app`: the command line of the server (flags, load the model, serve)."""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
# oneDNN's TensorFlow allocator pools large buffers and never returns them: the first 8K fill
# left the server 330 MB larger for good (more for larger photos). Fills take as long without
# it (8K: 0.77-0.79 s on, 0.79-0.85 s off).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Gradio and huggingface_hub send telemetry by default; a local tool sends nothing.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from absl import app, flags  # noqa: E402

from hifill_tf import flags as shared_flags  # noqa: E402
from hifill_tf.app import guard, memory, server, service as service_module  # noqa: E402

flags.DEFINE_string("host", server.DEFAULT_HOST, "Address to listen on. The default serves only "
                    "this machine; 0.0.0.0 serves the network, with no authentication.")
flags.DEFINE_integer("port", server.DEFAULT_PORT, "Port to listen on.", lower_bound=0,
                     upper_bound=65535)
shared_flags.define_model("saved_model")
shared_flags.define_max_pixels()
flags.adopt_module_key_flags(shared_flags)  # --help lists them with this program's own
flags.DEFINE_string("memory_budget", None, "Working memory that requests may hold at once, on "
                    "top of the model's, e.g. 6G or 1500M. A request reserves "
                    f"{memory.BYTES_PER_PIXEL} bytes per pixel of its photo (read from the file "
                    "header, before decoding) plus its body; what does not fit waits, what is "
                    "larger than the budget is refused (413). Request bodies are limited to a "
                    "twelfth of it. Default: a quarter of this machine's memory.")
flags.DEFINE_multi_string("allow_origin", [], "An origin (https://example.org) whose web pages "
                          "may call this server (CORS). Default: only the server's own pages.")
flags.DEFINE_float("request_timeout", guard.TIMEOUT_SECONDS, "Seconds a client may pause while "
                   "sending a request body (408 after that), and may take to send its request "
                   "headers (disconnected after that).", lower_bound=0.1)
flags.DEFINE_string("web_app", None, "Serve this folder's static web page at / instead of the "
                    "Gradio page, e.g. IOPaint's built page (iopaint/web_app from its wheel).")
FLAGS = flags.FLAGS


def main(argv):
    from hifill_tf.console import format_seconds
    from hifill_tf.loading import ModelError

    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    if problem := shared_flags.check_one_model():
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if FLAGS.web_app and not os.path.isfile(os.path.join(FLAGS.web_app, "index.html")):
        print(f"error: --web_app: {FLAGS.web_app}: no index.html; give the folder of a built "
              "web page", file=sys.stderr)
        return 2
    try:
        budget = memory.MemoryBudget(memory.parse_bytes(FLAGS.memory_budget)
                                     if FLAGS.memory_budget else memory.default_budget())
    except ValueError as e:
        print(f"error: --memory_budget: {e}", file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
        import socketio  # noqa: F401
        import uvicorn
    except ImportError as e:
        print(f"error: {e.name} is not installed; pip install -e '.[app]'", file=sys.stderr)
        return 1
    memory.configure_allocator()
    tick = time.monotonic()
    try:
        service = service_module.Inpainting.load(FLAGS.weights, FLAGS.saved_model,
                                                 FLAGS.max_pixels, budget)
    except (ModelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    asgi = server.create_app(service, listen_host=FLAGS.host, allow_origins=FLAGS.allow_origin,
                             timeout=FLAGS.request_timeout, web_app=FLAGS.web_app)
    memory.release_memory()
    print(f"model: {service.description}, network {service.network_size} (loaded and traced "
          f"in {format_seconds(time.monotonic() - tick)}); memory budget "
          f"{memory.format_bytes(budget.total)}, request bodies up to "
          f"{memory.format_bytes(service.max_body)}", flush=True)
    host = f"[{FLAGS.host}]" if ":" in FLAGS.host else FLAGS.host
    print(f"open http://{host}:{FLAGS.port}/ in a browser; REST API at /api/v1/inpaint",
          flush=True)
    if FLAGS.host not in guard.LOOPBACK_NAMES:
        print(f"note: listening on {FLAGS.host}: anyone who can reach it can use this server "
              "(there is no authentication)", file=sys.stderr)
    # limit_concurrency: connections past it get a 503 instead of holding memory and threads.
    uvicorn.run(asgi, host=FLAGS.host, port=FLAGS.port, log_level="warning",
                limit_concurrency=64, timeout_keep_alive=5,
                http=guard.header_timeout_protocol(FLAGS.request_timeout))
    return 0


if __name__ == "__main__":
    app.run(main)
