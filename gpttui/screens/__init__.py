"""The app's screens: the dashboard, the compare screen and the screens they open. They read the
run through controller.RunController and ask for changes with that module's messages."""
