"""labloop's edges: the `labloop` command, the demo and the status page.

They start workers, send tasks and read queues (`workers`) and call the loop (`agent`);
nothing below them imports them.
"""
