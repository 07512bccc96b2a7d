"""Pure logic over a run's history and config: doctor, forecast, export, GPU peaks, live series."""
