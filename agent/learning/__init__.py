"""Learning: the model, where it is blind, P(success), the acquisition and the swarm."""
