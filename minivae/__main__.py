"""`python -m minivae ...` is the same as the `minivae` command."""
from minivae.cli.main import main

raise SystemExit(main())
