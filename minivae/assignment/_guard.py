"""The guard between the grader and a worker: nothing the submission starts outlives it (Linux).

Run by minivae.assignment.launch as ``python -I -B -S _guard.py PARENT UID -- COMMAND...``
(standard library only), as the grader's user.  It

1. makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER): every process
   the worker starts that loses its parent (a ``setsid`` daemon, a double fork)
   becomes the guard's child, never init's;
2. asks for SIGTERM when its parent, the grader, dies (PR_SET_PDEATHSIG), so a
   killed grader leaves no worker looping;
3. runs COMMAND (the worker, or the sandbox around it) as its child and waits for it;
4. then, or on SIGTERM (the grader's time limit, or its death), kills every
   descendant (all of them are its children by then) and, when the worker has a
   user id of its own (UID >= 0, not 0), every process of that user: a child that
   switches to that uid and sends SIGKILL to all it may signal (kill(-1)) until
   none is left.

It exits with the worker's status (128 + signal if killed).  The worker's user
cannot signal the guard (another uid), so it cannot stop it doing this.
"""
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option, value):
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        return -1


def _children():
    """PIDs of this process's children (Linux /proc: the children of each of its threads)."""
    found = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return found


def _kill_user(uid):
    """SIGKILL every process of ``uid`` (not root): from a child running as that uid, kill(-1)."""
    if uid <= 0:
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(10_000):
                os.kill(-1, signal.SIGKILL)            # every process this uid may signal, but itself
        except (ProcessLookupError, PermissionError, OSError):
            pass                                       # ESRCH: no process of the uid is left
        os._exit(0)
    os.waitpid(pid, 0)


def sweep(uid):
    """Kill every descendant (reparented to us) and every process of ``uid``; reap them all."""
    for _ in range(10_000):
        _kill_user(uid)
        children = _children()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not children:
                return
        if not children and not _children():
            return


_ADOPTING = []                     # the time (clock ticks since boot) this process became a subreaper


def _start_time(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return -1


def adopt_orphans():
    """Make the calling process (the grader) a subreaper, once: used where a worker runs as the
    grader's own user (no other uid, no sandbox) and so could kill its guard."""
    if not _ADOPTING and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0:
        _ADOPTING.append(_now_ticks())


def _now_ticks():
    try:
        uptime = float(open("/proc/uptime").read().split()[0])
        return int(uptime * os.sysconf("SC_CLK_TCK")) - 1
    except (OSError, ValueError):
        return 0


def sweep_strays(live):
    """In the grader: kill and reap every child that is not a guard in ``live`` and was started
    after :func:`adopt_orphans` (an orphan some worker left).  Nothing without adopt_orphans."""
    for _ in range(100):
        strays = [pid for pid in _children() if pid not in live
                  and _ADOPTING and _start_time(pid) >= _ADOPTING[0]]
        if not strays:
            return
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def main():
    parent, uid = int(sys.argv[1]), int(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1:]
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    stop = []

    def on_signal(number, frame):
        stop.append(number)
        raise KeyboardInterrupt

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)
    status = 128 + signal.SIGKILL
    try:
        if os.getppid() != parent:                    # the grader died before PDEATHSIG was set
            return status
        child = os.fork()
        if child == 0:
            try:
                for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(number, signal.SIG_DFL)
                os.execv(command[0], command)
            finally:
                os._exit(127)
        while True:
            pid, wait_status = os.waitpid(-1, 0)       # reap orphans as they come, until the worker ends
            if pid == child:
                status = os.waitstatus_to_exitcode(wait_status)
                status = 128 - status if status < 0 else status
                break
    except (KeyboardInterrupt, ChildProcessError):
        pass
    finally:
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)      # nothing stops the sweep
        sweep(uid)
    return status


if __name__ == "__main__":
    sys.exit(main())
