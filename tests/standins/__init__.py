"""Stand-ins for servers that cannot be reached from CI: test code only, never shipped."""
