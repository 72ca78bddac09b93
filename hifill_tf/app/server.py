"""The server's ASGI app: the REST API, socket.io and the page, inside the guard.

    CORS (only with --allow_origin)  ->  Guard  ->  socket.io at /socket.io  ->  FastAPI:
        /api/v1/...  the REST API (`rest`)
        /            the Gradio page (`page`), or a folder of static files (`web_app`)

socket.io is there because IOPaint's page connects to it (it reports diffusion steps; HiFill
sends only "diffusion_finish" after each fill, as IOPaint does).
"""

from __future__ import annotations

import os

from hifill_tf.app import guard, rest

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def create_app(service, ui=True, listen_host=DEFAULT_HOST, allow_origins=(),
               timeout=guard.TIMEOUT_SECONDS, web_app=None):
    """The ASGI app over `service` (an `Inpainting`).

    Args:
        ui: serve the Gradio page at /.
        listen_host: the address served; names the Host header may carry (`guard`).
        allow_origins: other origins whose pages may call the API (CORS); same-origin only by
            default.
        timeout: seconds a client may pause while sending a body.
        web_app: a folder of static files served at / instead of the Gradio page (IOPaint's
            built page, say).
    """
    import socketio
    from fastapi import FastAPI

    # No /docs: Swagger UI loads its scripts from a CDN, and this server is meant to work offline.
    app = FastAPI(title="hifill_tf", docs_url=None, redoc_url=None, openapi_url=None)
    # The guard checks origins; socket.io's own check would refuse --allow_origin's.
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])

    async def finished():
        await sio.emit("diffusion_finish")

    rest.add_routes(app, service, on_finish=finished)
    if web_app is not None:
        from starlette.staticfiles import StaticFiles

        if not os.path.isfile(os.path.join(web_app, "index.html")):
            raise ValueError(f"{web_app}: no index.html; give the folder of a built web page")
        app.mount("/", StaticFiles(directory=web_app, html=True), name="web_app")
    elif ui:
        import gradio as gr

        from hifill_tf.app import page

        app = gr.mount_gradio_app(app, page.build(service), path="/", ssr_mode=False,
                                  mcp_server=False, theme=page.theme(), css=page.CSS,
                                  footer_links=[], max_file_size=service.max_body)
    asgi = guard.Guard(socketio.ASGIApp(sio, app), service.budget, service.max_body,
                       guard.allowed_hosts(listen_host), allow_origins, timeout)
    if allow_origins:
        from starlette.middleware.cors import CORSMiddleware

        asgi = CORSMiddleware(asgi, allow_origins=list(allow_origins),
                              allow_methods=["GET", "POST"], allow_headers=["Content-Type"],
                              expose_headers=list(rest.EXPOSED_HEADERS))
    return asgi
