"""The TagIO client: settings, the Client core (relay, incoming and outgoing sessions) and the CLI."""
