"""Models of this app arrive with its issue; the app is installed now so the layout is whole."""
