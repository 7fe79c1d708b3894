"""Emerging themes: BERTopic discovery over a tenant's complaints, with ids stable across refits.

The model is ``models.discovery.ThemeDiscoverer``; ``commands.discover`` is the offline
``sawt discover`` command. The database job passes stored embeddings straight to
``ThemeDiscoverer.fit`` (complaints are never encoded twice).
"""
