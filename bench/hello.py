"""The floor to compare with: a bare Bottle `hello` route on waitress.

`python -m bench.hello PORT THREADS` serves POST /hello (the body is left
unread, as the smallest route would) and GET /healthz.
"""

import sys

import bottle
import waitress

app = bottle.Bottle()


@app.post("/hello")
def hello():
    return {"status": "hello"}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    port, threads = int(argv[0]), int(argv[1])
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
