"""The inbox: the watcher, the ingest of one dropped file, and the lab's test protocol."""
