"""Card-fraud prediction: schema, features, models, explanations and serving."""

__version__ = "0.1.0"
