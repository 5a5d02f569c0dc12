"""The baseline: a bare Falcon app answering a small JSON document, no middleware.

``gunicorn bench.hello_app:app`` under the same settings as Hearth shows what
the server and framework alone cost on this machine.
"""

import falcon


class Hello:
    def on_get(self, req, resp):
        resp.media = {"message": "hello", "ok": True}


app = falcon.App()
app.add_route("/", Hello())
