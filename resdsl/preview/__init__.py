"""`resdsl preview`: a local page that draws a `.res` file and redraws it on each save.

A front end, like the command line: it calls resdsl.api (and the diagram renderers, as
`resdsl render` does); no backend imports it. See docs/preview.md."""
from .server import PreviewServer, start, stop
from .state import Preview

__all__ = ["Preview", "PreviewServer", "serve", "start", "stop"]


def serve(spec, network=None, port: int = 0, out=None) -> int:
    """Serve the preview of `spec` on 127.0.0.1:`port` until Ctrl-C (or SIGTERM); prints the
    URL first. Returns 0 after a clean stop."""
    import signal
    import sys
    import threading
    out = out or sys.stdout
    preview = Preview(spec, network)
    try:
        server, threads = start(preview, port)
    except OSError as e:
        from ..diagnostics import ResdslError
        raise ResdslError("io", f"cannot listen on 127.0.0.1:{port}: {e.strerror}",
                          help="pick another --port, or --port 0 for a free one") from None
    done = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        print(server.url, file=out, flush=True)  # stdout: the URL alone, for a script to read
        print(f"previewing {preview.path}; press Ctrl-C to stop", file=sys.stderr, flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop(server, threads)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("preview stopped", file=sys.stderr, flush=True)
    return 0
