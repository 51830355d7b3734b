"""What the command modules share: option parsing helpers and the one count rule, named as typed."""
import argparse
import json
import os

from minivae.utils.validation import check_count


def check_counts(args, lows):
    """Every count option, checked by the package's one rule and named as typed (``--batch-size``)."""
    for name, low in lows.items():
        value = getattr(args, name)
        if value is not None:
            check_count(value, f"--{name.replace('_', '-')}", low)


def names(text):
    """'a,b' -> ['a', 'b'] (None stays None: every exercise)."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def sizes(text):
    """'400' or '512,256' -> (400,) or (512, 256); '' or 'none' -> () (affine maps)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {text!r}")
    return sizes


def check_out(value, option="--out"):
    """An output path typed by the user: None (the default) or a non-empty path."""
    if value is not None and not value.strip():
        raise ValueError(f"{option} must be a path, got an empty one")
    return value


def write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically; a failure (a full disk) leaves no temporary."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
