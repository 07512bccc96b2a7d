"""The app's screens: the dashboard and the modal screens it opens."""
