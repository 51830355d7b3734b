"""Progress output, one way for the whole package: messages, and a throttled bar with an ETA.

Everything that takes seconds (training, evaluation, downloads, benchmarks,
grading) reports through :class:`Progress`:

* ``say(line)``: one line, always written (when the reporter is enabled);
* ``update(done, total, detail)``: a bar ``label [#####-----] done/total unit (50%),
  12 s, about 12 s left  detail``.  On a terminal the line is rewritten in
  place (at most every LIVE_SECONDS); elsewhere (a log file, a notebook, CI)
  a new line is written at most every ``every`` seconds, so logs stay short;
* ``finish(line)``: ends a bar with a summary line.

``stream=None`` silences it (what library calls get by default when the
caller asks for no progress).  This module imports only the validation rules.
"""
import sys
import time

from minivae.utils.validation import check_number, check_stream

BAR_WIDTH = 24
LIVE_SECONDS = 0.25      # a bar rewritten in place on a terminal: at most 4 times a second


class Progress:
    """A progress reporter writing to ``stream`` (a text file such as sys.stderr, or None for silence).

    Parameters
    ----------
    stream : text file or None
        Where lines go; None writes nothing.
    label : str
        The first word(s) of every bar line, e.g. ``"epoch 3/20"``.
    unit : str
        What is counted ("examples", "bytes"), written after ``done/total``.
    every : float
        Seconds between two bar lines when the stream is not a terminal (the
        first bar line waits that long too, so calls shorter than ``every``
        print no bar at all).
    """

    def __init__(self, stream=sys.stderr, label="", unit="", every=2.0):
        self.stream, self.label, self.unit = check_stream(stream), str(label), str(unit)
        self.every = check_number(every, "every", low=0)
        self.live = stream is not None and getattr(stream, "isatty", lambda: False)()
        self.start = self.last = time.perf_counter()
        self.bar_shown = False       # a live bar is on the current line
        self.written = False         # any bar line was written

    def say(self, line):
        """Write one whole line (ending a live bar first)."""
        if self.stream is None:
            return
        self.stream.write(("\r" if self.live and self.bar_shown else "") + line
                          + (" " * 8 if self.live and self.bar_shown else "") + "\n")
        self.stream.flush()
        self.bar_shown = False

    def restart(self, label=None):
        """Start timing a new bar (e.g. the next epoch), optionally with a new label."""
        self.start = self.last = time.perf_counter()
        if label is not None:
            self.label = label

    def update(self, done, total, detail=""):
        """Show ``done`` of ``total`` with the elapsed time and an estimate of the time left."""
        if self.stream is None or done <= 0:
            return
        now = time.perf_counter()
        if now - self.last < (LIVE_SECONDS if self.live else self.every):
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (total - done) / done
        filled = int(BAR_WIDTH * min(done, total) / max(total, 1))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        unit = f" {self.unit}" if self.unit else ""
        line = (f"{self.label} [{bar}] {done}/{total}{unit} ({100 * done / max(total, 1):.0f}%), "
                f"{elapsed:.0f} s, about {left:.0f} s left" + (f"  {detail}" if detail else ""))
        self.stream.write(("\r" if self.live else "") + line + ("" if self.live else "\n"))
        self.stream.flush()
        self.bar_shown = self.live
        self.written = True

    def elapsed(self):
        """Seconds since the reporter was made or last restarted."""
        return time.perf_counter() - self.start

    def finish(self, line):
        """End a bar with a summary line; written only if a bar line was (short calls stay silent)."""
        if self.written:
            self.say(line)
