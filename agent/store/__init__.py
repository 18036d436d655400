"""Storage: SQLModel tables and migrations, model files, files written whole."""
