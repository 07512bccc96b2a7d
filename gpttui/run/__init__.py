"""The run, without torch or Textual: its directory, config, lr schedule, protocol, history and state."""
