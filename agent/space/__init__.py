"""The design space: parameters, constraints, and its vectorised views on the grid."""
