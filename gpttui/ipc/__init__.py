"""Talking to engine and sampler processes: the child-process transport and the control socket."""
