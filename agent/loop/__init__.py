"""The loop's steps: batch states, retrain, propose, recipe files, history import."""
