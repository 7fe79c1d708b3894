"""Task heads (sentiment, topics). Each module registers its model kinds with the registry.

``tfidf``: char + word n-gram baselines that read text; encoder heads read embeddings.
"""

from models.heads.tfidf import TfidfSentimentClassifier, TfidfTopicClassifier

__all__ = ["TfidfSentimentClassifier", "TfidfTopicClassifier"]
