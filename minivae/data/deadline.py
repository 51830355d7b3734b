"""An overall deadline for one HTTP download: headers and body together, however the server stalls.

urllib's ``timeout`` bounds each single wait for the network, not the whole
request: a server that drips its status line or headers one byte a second, or
answers ``100 Continue`` forever, never lets one wait run out.  A
:class:`Deadline` starts a timer; when it fires, every connection the
download opened is shut down, so the read that is waiting returns at once and
the download fails (minivae.data.download then says it timed out).

Used by minivae.data.download only; a student need not read it.
"""
import socket
import threading
import urllib.request


class Deadline:
    """One file's overall deadline: when ``seconds`` have passed, every connection it watches is
    shut down, so whatever read is waiting (status line, headers, body) returns at once.

    Socket objects, not file descriptors, are kept: shutting down one that is already closed
    is a harmless error, never a shutdown of another file that reused its number.
    """

    def __init__(self, seconds):
        self.sockets, self.expired, self.received = [], False, 0
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def watch(self, sock):
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut_down(sock)

    def _expire(self):
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut_down(sock)

    def opener(self):
        """A urllib opener whose HTTP and HTTPS connections this deadline watches."""
        return urllib.request.build_opener(_WatchedHTTP(self), _WatchedHTTPS(self))

    def cancel(self):
        self.timer.cancel()


def _shut_down(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:           # already closed
        pass


class _DeadlineHandler:
    """Mixed into urllib's HTTP(S) handlers: every connection they open is watched by a deadline."""

    def __init__(self, deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):
        deadline = self.deadline

        class Watched(http_class):
            def connect(self):
                super().connect()            # TCP (and, for HTTPS, the TLS handshake)
                deadline.watch(self.sock)

        return super().do_open(Watched, req, **kwargs)


class _WatchedHTTP(_DeadlineHandler, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_DeadlineHandler, urllib.request.HTTPSHandler):
    pass
