"""The tribe connector for syncd."""
