"""The app's routers, one file per resource; each gets the Service through `get_service`."""
