"""The ``minivae`` command: main.py parses the command line, one module per subcommand.

What is inside::

    main.py            the entry point (``minivae = minivae.cli.main:main``)
    common.py          what every subcommand shares (count checks, output folders, JSON)
    train.py, sample.py, evaluate.py, gradcheck.py, bench.py, reproduce.py, assignment.py
                       one subcommand each: ``add_parser(commands)`` and ``run(args)``
    gradcheck_table.py the ``minivae gradcheck`` table: every gradient of the package checked

A student uses the command, not this code (the tutorials call the API instead);
the README lists the commands.  It is
the top layer: it may import anything below, nothing imports it.
"""
