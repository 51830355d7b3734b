"""Who a worker runs as, and what it could read: the checks made before any submitted code runs.

* :func:`worker_identity`: a root grader runs every worker under a user id of
  its own (a fresh uid, with a group of the same number, unused by any account
  or process), so nothing else on the host can signal it, it can signal nothing
  else, and everything it starts can be found by its uid and ended.
  ``MINIVAE_WORKER_UIDS`` ("first-last") sets the range (default
  DEFAULT_UIDS); ``MINIVAE_WORKER_USER`` names one account instead (shared by
  all workers: weaker, the instructor's explicit choice).
* :func:`reference_copies`: every copy of the package a worker could reach
  (the package the grader runs, the solution checkout and its git objects,
  every install of the package on Python's path, editable-install maps).
* :func:`refuse_untrusted`: without the sandbox, grading refuses to start if
  the worker would run as root (no way to drop privileges) unless
  ``MINIVAE_ALLOW_ROOT_WORKER=1`` (``--allow-root-worker``), or if one of those
  copies (or a folder the worker must not see) is readable by the worker's uid,
  and names it.
"""
import os
import random
import re
import stat
import sys
import threading
from pathlib import Path

from minivae.assignment.exercises import AssignmentError

try:
    import pwd
    import grp
except ImportError:                 # pragma: no cover - Windows
    pwd = grp = None

HERE = Path(__file__).parent
DEFAULT_UIDS = (1_430_000_000, 1_430_999_999)
_TAKEN = set()                      # fresh uids of this process's live workers
_LOCK = threading.Lock()


def _can_switch_user():
    """Whether this process may change its uid (root with CAP_SETUID and CAP_SETGID)."""
    if os.geteuid() != 0:
        return False
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return True                 # not Linux: root can
    caps = int(re.search(r"CapEff:\s*([0-9a-f]+)", text).group(1), 16)
    return bool(caps & (1 << 7)) and bool(caps & (1 << 6))


def _uid_range():
    text = os.environ.get("MINIVAE_WORKER_UIDS", "")
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if text and not (match and 0 < int(match.group(1)) <= int(match.group(2)) < 2**32 - 1):
        raise AssignmentError(f"MINIVAE_WORKER_UIDS must be 'first-last' (uids > 0), got {text!r}")
    return (int(match.group(1)), int(match.group(2))) if match else DEFAULT_UIDS


def _uid_in_use(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return True
    except KeyError:
        pass
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\t{uid}\t" in status.read_text().split("Uid:", 1)[1].split("\n", 1)[0] + "\t":
                return True
        except (OSError, IndexError):
            continue
    return False


def worker_identity():
    """(uid, gid, fresh) the worker runs as, or None for the grader's own user.

    Root only: MINIVAE_WORKER_USER's account if set (not fresh), else a fresh uid
    from the range (release it with :func:`release`); None if root cannot switch.
    """
    if pwd is None or not _can_switch_user():
        return None
    name = os.environ.get("MINIVAE_WORKER_USER", "")
    if name:
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            raise AssignmentError(f"MINIVAE_WORKER_USER names no user: {name!r}") from None
        return user.pw_uid, user.pw_gid, False
    first, last = _uid_range()
    for _ in range(1000):
        uid = random.randint(first, last)
        with _LOCK:
            if uid in _TAKEN or _uid_in_use(uid):
                continue
            _TAKEN.add(uid)
        return uid, uid, True
    raise AssignmentError(f"no free uid for a worker in {first}-{last} (MINIVAE_WORKER_UIDS)")


def release(identity):
    if identity is not None and identity[2]:
        with _LOCK:
            _TAKEN.discard(identity[0])


def _git_objects(root):
    """The git folder of a checkout (for a worktree, the main repository's too)."""
    dot = Path(root) / ".git"
    found = [dot] if dot.exists() else []
    if dot.is_file():                                   # a worktree: "gitdir: /repo/.git/worktrees/x"
        match = re.match(r"gitdir:\s*(.+)", dot.read_text(errors="replace").strip())
        if match:
            gitdir = Path(match.group(1).strip())
            found += [gitdir, gitdir.parent.parent] if gitdir.parent.name == "worktrees" else [gitdir]
    return found


def reference_copies(*roots):
    """Every copy of the package a worker might read: this package, the checkouts ``roots``
    (their package, tests, tutorials, docs and git objects), and every install on Python's path
    (for an editable install, the folders its map names: the map itself holds only paths, and
    Gradescope's image, installed editable from /autograder/source, leaves it readable)."""
    package = HERE.parent.resolve()
    found = [package]
    for root in (package.parent, *map(Path, roots)):
        found += [Path(root) / part for part in ("minivae", "tests", "tutorials", "docs")] + _git_objects(root)
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir() or folder.resolve() == package.parent:
            continue
        for item in folder.iterdir():
            lowered = item.name.lower()
            if "minivae" not in lowered or lowered.endswith(".dist-info"):      # metadata holds no code
                continue
            if not (item.suffix in (".pth", ".py", ".egg-link") and item.is_file()):
                found.append(item)
                continue
            text = item.read_text(errors="replace")[:100_000]
            found += [Path(p) for p in re.findall(r"""['"](/[^'"\n]*minivae[^'"\n]*)['"]""", text)]
            found += [Path(line.strip()) / "minivae" for line in text.splitlines() if line.startswith("/")]
            if item.suffix == ".py" and not lowered.startswith("__editable__"):
                found.append(item)        # a module of that name (an editable map holds only paths)
    unique = {}
    for path in found:
        if path.exists():
            unique.setdefault(os.path.realpath(path), None)
    return list(unique)


def readable_by(path, uid, gid):
    """Whether ``uid`` (group ``gid`` only) can reach ``path`` and read it (by permission bits)."""
    path = Path(os.path.realpath(path))
    for folder in [*reversed(path.parents), path]:
        try:
            info = folder.stat()
        except OSError:
            return False
        need = 0o1 if folder != path else 0o5 if stat.S_ISDIR(info.st_mode) else 0o4   # search, read
        shift = 6 if info.st_uid == uid else 3 if info.st_gid == gid else 0
        if (info.st_mode >> shift) & need != need:
            return False
    return True


def refuse_untrusted(sandboxed, identity, hide=()):
    """Raise AssignmentError if submitted code would run unsandboxed as root, or could read a copy
    of the reference the grader runs (or a folder of ``hide``, e.g. a class's submissions);
    a message names the cause and what to do."""
    if sandboxed or os.name != "posix":
        return
    if identity is None:
        if os.geteuid() == 0 and os.environ.get("MINIVAE_ALLOW_ROOT_WORKER") != "1":
            raise AssignmentError(
                "refusing to run submitted code as root without the sandbox: this root cannot switch "
                "to another user; grade in the sandbox or the autograder, or set "
                "MINIVAE_ALLOW_ROOT_WORKER=1 (--allow-root-worker) if you trust every submission")
        return
    uid, gid, _ = identity
    readable = [p for p in [*reference_copies(), *map(str, hide)] if readable_by(p, uid, gid)]
    if readable:
        raise AssignmentError(
            f"refusing to grade without the sandbox: the worker (uid {uid}) could read "
            f"{', '.join(readable[:6])}{' ...' if len(readable) > 6 else ''}: a copy of the solution "
            "or of other submissions; make it unreadable to other users (chmod o-rwx on its folder) "
            "or grade in the sandbox or the autograder")
