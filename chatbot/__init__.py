"""faqbot: assistant conversationnel pour la FAQ du Ségur du numérique en santé."""

__version__ = "0.1.0"
