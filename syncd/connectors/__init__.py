"""The connector layer: what a connector is (its capabilities, typed), how plugins are
found, the actor that runs a connection, the HTTP client connectors share and the
emulator base class. Plugins import the public part from :mod:`syncd.plugin`."""
