"""Manager reports: a period's top themes, movers, alerts and experience per service."""
