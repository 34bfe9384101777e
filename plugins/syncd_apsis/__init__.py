"""The apsis connector for syncd."""
