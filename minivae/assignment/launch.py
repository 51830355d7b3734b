"""Running student code: the worker process, its sandbox, and reading back what it returns.

:func:`run_worker` starts ``_worker.py`` on a package tree with a JSON request
on its stdin and reads its stdout as an .npz of plain numeric arrays
(:func:`parse_outputs`: stored members only, sizes capped, ``allow_pickle=False``,
numeric dtypes only).  Nothing else the worker does reaches the caller: its
stderr is kept only as a capped tail for messages, and a worker that writes more
than MAX_OUTPUT_BYTES, or runs past its time limit, is killed.

The sandbox (:func:`sandbox_status`), where Linux allows it: the worker runs in
its own PID and mount namespaces (util-linux ``unshare``), chrooted into a
read-only root that holds only the system's and Python's folders, the worker's
scratch folder and its tree, with every installed copy of the package hidden;
it keeps no capabilities (``setpriv``) and, if the grader is root, runs under a
uid of its own (minivae.assignment.isolation).  So it cannot read the reference
solution, the submissions or the grader's files, cannot see or signal any
process outside, and everything it starts dies with it.  Without the sandbox
(macOS, or namespaces refused) a root grader's worker drops to its own uid
itself, and grading refuses to start where that uid could read the solution or
where it would run as root: see docs/assignments.md.  In every mode a guard
(_guard.py, a subreaper) ends everything the worker started when it ends.
The worker limits itself (_worker.py): no file writes, no new processes.
"""
import io
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

import minivae.assignment._guard as _guard
from minivae.assignment.isolation import reference_copies, refuse_untrusted, release, worker_identity

HERE = Path(__file__).parent
WORKER = HERE / "_worker.py"
GUARD = HERE / "_guard.py"        # between the grader and each worker: a subreaper (Linux)
GUARD_GRACE = 10.0                # seconds the guard has to end everything after SIGTERM
MAX_OUTPUT_BYTES = 64 << 20       # a worker's .npz beyond this is refused (and the worker killed)
MAX_LOG_BYTES = 64 << 10          # the tail of its stderr kept for messages
MAX_ERROR_BYTES = 4096            # an "!error" entry (a traceback's tail, as uint8)
EXTRA_TASKS = 32                  # processes and threads a worker may start (iwae_bound uses a thread)
MAX_MEMBERS = 100_000             # arrays in one .npz (the largest exercise returns about 3,000)
NUMERIC_KINDS = "biuf"

# The sandbox, run by `unshare` as PID 1 of its namespaces: $1 chroot, $2 the mount point of the new
# root, then (kind, path) pairs up to "--", then the command.  dir/file: bound read-only at the same
# path; link: the same symlink; hide: an empty read-only tmpfs over the path.
SANDBOX_SCRIPT = r"""
set -e
chroot=$1; new=$2; shift 2
mount -t tmpfs -o size=1m,mode=755 minivae-sandbox "$new"
while [ "$1" != "--" ]; do
    kind=$1; path=$2; shift 2
    case $kind in
        dir) mkdir -p "$new$path"; mount --bind -o ro,nosuid,nodev "$path" "$new$path" ;;
        file) mkdir -p "$new${path%/*}"; : > "$new$path"; mount --bind "$path" "$new$path" ;;
        link) mkdir -p "$new${path%/*}"; ln -s "$(readlink "$path")" "$new$path" ;;
        hide) mount -t tmpfs -o size=4k,mode=0,ro minivae-hidden "$new$path" ;;
        hidefile) mount --bind -o ro /dev/null "$new$path" ;;
    esac
done
shift
mount -o remount,bind,ro "$new"
exec "$chroot" "$new" "$@"
"""
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
_STATUS = {}                      # the sandbox probe's result, once per process
_PROBING = threading.Lock()       # graders run workers from threads: one probe, and all wait for it


def worker_user(sandboxed=True):
    """(uid, gid) a worker would run as now, or None for the grader's own user (see isolation)."""
    identity = worker_identity()
    release(identity)
    return None if identity is None else identity[:2]


def _python_paths():
    """The folders the worker's Python needs: its prefixes and the site folders of NumPy."""
    import numpy
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(numpy.__file__).resolve().parents[1]),
             str(Path(os.path.realpath(sys.executable)).parents[1])}
    return sorted(paths)


def _installed_copies(*roots):
    """What the worker must not see: every copy of the package (isolation.reference_copies)."""
    return reference_copies(*roots)


def _binds(folders, hide):
    """The (kind, path) pairs of SANDBOX_SCRIPT: system folders, Python, ``folders``; ``hide`` over them."""
    pairs, bound = [], []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            pairs += ["link", path]
        elif os.path.isdir(path):
            pairs += ["dir", path]
            bound.append(path)
    for path in [*_python_paths(), *map(str, folders)]:
        path = os.path.realpath(path)
        if os.path.isdir(path) and not any(_inside(path, b) for b in bound):
            bound = [b for b in bound if not _inside(b, path)] + [path]
            pairs += ["dir", path]
    pairs += [x for path in DEVICES if os.path.exists(path) for x in ("file", path)]
    for path in hide:             # what is not bound is not there; hide what lies in a bound folder
        path = os.path.realpath(path)
        if (os.path.exists(path) and any(_inside(path, b) for b in bound)
                and not any(_inside(b, path) for b in bound)):
            pairs += ["hide" if os.path.isdir(path) else "hidefile", path]
    return pairs


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def sandbox_command(command, folders, hide=(), user=None):
    """``command`` wrapped in the sandbox, seeing only ``folders`` (and Python), as ``user`` ((uid, gid)
    or None: the grader's, without capabilities), or None without a sandbox."""
    found = [shutil.which(p, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))
             for p in ("unshare", "setpriv", "chroot")]
    if not (sys.platform.startswith("linux") and all(found)):
        return None
    unshare, setpriv, chroot = found
    root = tempfile.mkdtemp(prefix="minivae-sandbox-")
    drop = ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    if user is not None:
        drop = [f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups", *drop]
    return ([unshare, "--mount", "--pid", "--fork", "--kill-child"]
            + (["--map-root-user"] if os.geteuid() != 0 else [])
            + ["/bin/sh", "-c", SANDBOX_SCRIPT, "minivae-sandbox", chroot, root, *_binds(folders, hide), "--",
               "/usr/bin/setpriv" if setpriv.startswith("/usr/") else setpriv, *drop, *command]), root


def sandbox_status():
    """(True, "linux namespaces") if the sandbox works here, else (False, why not); probed once."""
    with _PROBING:
        if "ok" not in _STATUS:
            _STATUS.update(_probe())
    return _STATUS["ok"], _STATUS["why"]


def _probe():
    """Run `import numpy` in the sandbox: {"ok": it printed ok, "why": how, or why not}."""
    if os.environ.get("MINIVAE_SANDBOX") == "off":
        return {"ok": False, "why": "MINIVAE_SANDBOX=off"}
    identity = worker_identity()
    with tempfile.TemporaryDirectory(prefix="minivae-probe-") as scratch:
        _readable([scratch])
        wrapped = sandbox_command([sys.executable, "-I", "-B", "-c", "import numpy; print('ok')"],
                                  [scratch], _installed_copies(), None if identity is None else identity[:2])
        if wrapped is None:
            release(identity)
            return {"ok": False, "why": "needs Linux with unshare, chroot and setpriv (util-linux)"}
        try:
            result = subprocess.run(wrapped[0], capture_output=True, timeout=60, cwd=scratch,
                                    env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
        except (OSError, subprocess.SubprocessError) as error:
            return {"ok": False, "why": f"unshare failed: {error}"}
        finally:
            shutil.rmtree(wrapped[1], ignore_errors=True)
            release(identity)
    if result.returncode == 0 and result.stdout.strip() == b"ok":
        return {"ok": True, "why": "linux namespaces"}
    last = result.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"]
    return {"ok": False, "why": "unshare failed: " + last[-1][:200]}


def _readable(folders):
    """Let another user (the worker's) read ``folders`` (the grader's own copies): adds read (and, to
    directories, search) permission for everyone, takes nothing away."""
    for folder in folders:
        for path in [Path(folder), *Path(folder).rglob("*")]:
            if not path.is_symlink():
                os.chmod(path, path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


def _give_to_group(folders, gid):
    """Let the worker's group (``gid``, its own) read ``folders`` (its tree and scratch folder) and no
    one else: without the sandbox every worker can list /tmp, and a classmate's worker graded at the
    same time, under another uid, must not read this one's tree (its answers)."""
    for folder in folders:
        for path in [Path(folder), *Path(folder).rglob("*")]:
            if not path.is_symlink():
                os.chown(path, -1, gid)
                mode = path.stat().st_mode & 0o7777
                os.chmod(path, (mode | (0o050 if path.is_dir() else 0o040)) & ~0o007)


def tasks_of(uid):
    """How many processes and threads the user ``uid`` runs now (Linux /proc), or None elsewhere."""
    if not os.path.isdir("/proc/self"):
        return None
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, ValueError, KeyError):
            continue
    return count


def run_worker(tree, request, timeout, probe_files, sandbox=True, hide=(), limits=True, switch_user=True):
    """Run ``_worker.py`` on the package in ``tree``: ({case id: {key: array}}, note or None).

    ``request``: the JSON-ready list of cases; ``probe_files``: {name in the scratch
    folder: source path} of the probe modules the worker loads beside itself.
    ``sandbox``: use the sandbox if this machine has one; ``hide``: more folders it
    must not see (the submissions); ``limits``: the worker's own limits (no file
    writes; at most EXTRA_TASKS processes and threads more than its user runs now);
    ``switch_user``: as root, run as a user id of its own (``tree`` is then made
    readable to it: pass only a copy), and refuse (AssignmentError) to run it
    unsandboxed as root or where it could read a copy of the reference
    (minivae.assignment.isolation).  A guard (``_guard.py``) stands between: on
    Linux everything the worker starts ends with it.  A note says why there are no outputs.
    """
    import json
    tree = os.path.realpath(tree)
    sandboxed = sandbox and sandbox_status()[0]
    identity = worker_identity() if switch_user else None
    try:
        if switch_user:
            refuse_untrusted(sandboxed, identity)
        return _run(tree, json.dumps(request).encode(), timeout, probe_files, sandboxed, hide, limits,
                    identity)
    finally:
        release(identity)


def _run(tree, request, timeout, probe_files, sandboxed, hide, limits, identity):
    user = None if identity is None else identity[:2]
    with tempfile.TemporaryDirectory(prefix="minivae-worker-") as scratch:
        scratch = os.path.realpath(scratch)
        shutil.copyfile(WORKER, os.path.join(scratch, "_worker.py"))
        for name, source in probe_files.items():
            shutil.copyfile(source, os.path.join(scratch, name))
        command = [sys.executable, "-I", "-B", os.path.join(scratch, "_worker.py"), str(tree), "-"]
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "LC_ALL": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if limits:
            tasks = 0 if identity is not None and identity[2] else tasks_of(os.getuid() if user is None else user[0])
            command[-1] = "0" if tasks is None else str(tasks + EXTRA_TASKS)
        wrapped = None
        if sandboxed:
            wrapped = sandbox_command(command, [scratch, tree], [*_installed_copies(*hide), *hide], user)
        elif user is not None:
            command.append(str(user[0]))                 # the worker drops to it itself (_worker.py)
        if user is not None:
            if user[1] != user[0]:
                raise ValueError("a worker's group must have its user's number")
            _give_to_group([scratch, tree], user[1])
        guarded = (wrapped[0] if wrapped else command)
        if sys.platform.startswith("linux"):
            guarded = [sys.executable, "-I", "-B", "-S", str(GUARD), str(os.getpid()),
                       str(user[0] if identity is not None and identity[2] else -1), "--", *guarded]
            if user is None and not sandboxed:           # the worker could kill its guard (same user)
                _guard.adopt_orphans()
        try:
            with _LIVE_LOCK:                             # a sweep never sees a guard not yet listed
                process = subprocess.Popen(guarded, cwd=scratch, env=env, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
                _LIVE.add(process.pid)
            try:
                out, log, why = _communicate(process, request, timeout)
            finally:
                with _LIVE_LOCK:
                    _LIVE.discard(process.pid)
                    _guard.sweep_strays(_LIVE)
        finally:
            if wrapped:
                shutil.rmtree(wrapped[1], ignore_errors=True)
    if why:
        return {}, why
    tail = log.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    try:
        return parse_outputs(out), None
    except ValueError as error:
        code = process.returncode
        code = -(code - 128) if 128 < code < 160 else code        # the guard's 128 + signal
        return {}, (f"the submission's process gave no outputs (exit status {code}"
                    f"{'' if code >= 0 else ': killed by signal ' + str(-code)}"
                    f"; {error}): {tail[0][:300]}")


_LIVE, _LIVE_LOCK = set(), threading.Lock()       # the guards of this process's running workers


def _communicate(process, request, timeout):
    """Feed ``request``, read stdout (capped) and stderr (its tail) until exit: (out, log, why not)."""
    def feed():
        try:
            process.stdin.write(request)
            process.stdin.close()
        except OSError:
            pass                                         # the worker closed its stdin: its loss

    threading.Thread(target=feed, daemon=True).start()
    out, log, why = bytearray(), bytearray(), None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, out)
    selector.register(process.stderr, selectors.EVENT_READ, log)
    deadline = _now() + timeout
    try:
        while selector.get_map() and why is None:
            left = deadline - _now()
            if left <= 0:
                why = f"stopped after {timeout:g} s (an endless loop?)"
                break
            for key, _ in selector.select(min(left, 1.0)):
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(chunk)
                if key.data is out and len(out) > MAX_OUTPUT_BYTES:
                    why = f"the outputs were larger than {MAX_OUTPUT_BYTES >> 20} MiB"
                    del out[:]                           # refused: none of it is kept
                elif key.data is log and len(log) > 2 * MAX_LOG_BYTES:
                    del log[:-MAX_LOG_BYTES]
        while why is None and not _exited(process):
            if _now() > deadline:
                why = f"stopped after {timeout:g} s (an endless loop?)"
            else:
                time.sleep(0.01)
    finally:
        selector.close()
        process.stdout.close()
        process.stderr.close()
        _kill_group(process)
    return out, bytes(log[-MAX_LOG_BYTES:]), why         # out as read: no second copy


def _now():
    return time.monotonic()


def _exited(process):
    """Whether the worker has exited, without reaping it (its PID, and so its group, stay ours)."""
    if not hasattr(os, "waitid"):                        # macOS: poll() reaps it
        return process.poll() is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(process):
    """End the worker: SIGTERM to its guard (which kills everything the worker started and exits),
    then, after GUARD_GRACE seconds at most, SIGKILL to the guard's process group; then reap it.

    Before the reaping, so the group's id cannot have been reused by another program.
    """
    if not _exited(process):
        try:
            process.send_signal(signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = _now() + GUARD_GRACE
        while not _exited(process) and _now() < deadline:
            time.sleep(0.01)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def parse_outputs(data):
    """{case id: {key: array}} from a worker's .npz bytes; ValueError if it is anything else.

    Every member must be stored (not compressed: no decompression bomb), all of
    them at most MAX_OUTPUT_BYTES; arrays are read with allow_pickle=False and must
    be plain numeric (bool, int, uint, float; no fields, no objects); "!error"
    entries are short uint8 vectors.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ValueError(f"not an .npz ({error})") from None
    if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_OUTPUT_BYTES:
        raise ValueError("the outputs are too large")
    outputs = {}
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED or not member.filename.endswith(".npy"):
            raise ValueError(f"unexpected member {member.filename[:80]!r}")
        try:
            array = np.lib.format.read_array(io.BytesIO(archive.read(member)), allow_pickle=False)
        except Exception as error:                       # noqa: BLE001 -- any malformed member
            raise ValueError(f"unreadable member {member.filename[:80]!r} ({type(error).__name__})") from None
        key = member.filename[:-4]
        case, _, name = key.rpartition("/")
        if type(array) is not np.ndarray or array.dtype.kind not in NUMERIC_KINDS or array.dtype.fields:
            raise ValueError(f"{key[:80]} is not a plain numeric array")
        if name == "!error" and (array.dtype != np.uint8 or array.ndim != 1 or array.size > MAX_ERROR_BYTES):
            raise ValueError(f"{key[:80]} is not an error message")
        outputs.setdefault(case, {})[name] = array
    return outputs
