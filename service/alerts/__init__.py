"""Alerts: volume spikes and sentiment drops per topic against its own history, new themes."""
