"""The dashboard's panels, one module each; `series` is the bounded history they draw from."""
