"""``python worker.py`` = ``dedup worker``: the same click command, for containers and process managers."""

from dedup.cli import worker_command

if __name__ == "__main__":
    worker_command(prog_name="worker.py")
