"""The engine: the coordinator actor per integration, the pure rules and the records
they work on, the SQLite state store, and the jobs and safety stops around a sync."""
