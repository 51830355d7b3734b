"""The subcommands of ``minivae`` (minivae.cli), one module each: ``add_parser(commands)`` and ``run(args)``."""
