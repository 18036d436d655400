"""The read-only status web page (`labloop web`) and its JSON API."""
