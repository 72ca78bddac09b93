"""A local web page and REST API: paint the hole in a browser, get the photo back at full size.

    python -m hifill_tf.app                       # http://127.0.0.1:7860
    python -m hifill_tf.app --port 8080 --weights runs/x/best.npz --memory_budget 4G

One concept per module, imports going down the list:

- `memory`: the memory budget (requests reserve their working memory before using it) and
  giving memory back to the system;
- `errors`: the one error shape (IOPaint's JSON);
- `photos`: headers before pixels, photos and masks decoded, results encoded in the photo's
  format with its alpha and metadata;
- `service`: `Inpainting`, the model shared by the page and the API, with its budget;
- `guard`: the outer ASGI layer (Host and Origin checks, body limit and timeouts);
- `rest`: the REST API, IOPaint's routes;
- `page`: the Gradio page;
- `server`: `create_app`, the ASGI app of all of them;
- `__main__`: the command line.

Needs the `app` extra: pip install -e '.[app]'.
"""
