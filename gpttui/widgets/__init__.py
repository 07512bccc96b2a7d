"""The dashboard's panels, one module each (what they draw comes from gpttui/analysis/)."""
