"""Tools that work on the whole mesh (every service): migrations, dead letters, reconciliation.
They live beside the services, not in mesh/, which is the runtime every service shares and knows none."""
