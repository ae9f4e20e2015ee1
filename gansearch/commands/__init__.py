"""One module per `gansearch` sub-command: `add_arguments(parser)` and `run(args)`."""
