"""The services' own records: heartbeats, tasks that gave up, and what each task is for."""
