"""One module per `gpttui` subcommand (see gpttui/cli.py)."""
