"""The run, without torch or Textual: its directory, config, lr schedule, sizing, protocol, history
and state, and the units its figures are shown in."""
