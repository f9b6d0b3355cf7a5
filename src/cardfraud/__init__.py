"""Card-fraud prediction platform: schema, features, models, explanations and serving."""

__version__ = "0.1.0"
