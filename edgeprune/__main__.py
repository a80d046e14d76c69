from edgeprune.cli import entry

entry()
