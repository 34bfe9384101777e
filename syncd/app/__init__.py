"""The application: the daemon and its supervision, reloads and control, the CLI, the
admin endpoint, the scheduler, logs, systemd integration, metrics and the sandbox."""
