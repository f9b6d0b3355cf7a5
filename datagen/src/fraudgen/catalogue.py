"""Reference tables: cities, currencies, merchant category codes and time profiles.

The tables are modelling choices, not measured data. Amount medians are in euros and
roughly reproduce an average card payment of about 40 EUR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class City:
    """A city where customers live or merchants trade.

    Attributes:
        name: City name.
        country: ISO 3166-1 alpha-2 code.
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        weight: Relative population, which scales customers and merchants.
        issuer: Whether the issuing bank has customers there (euro area only).
    """

    name: str
    country: str
    lat: float
    lon: float
    weight: float
    issuer: bool


CITIES: tuple[City, ...] = (
    City("Berlin", "DE", 52.520, 13.405, 3.6, True),
    City("Hamburg", "DE", 53.551, 9.993, 1.8, True),
    City("Munich", "DE", 48.137, 11.575, 1.5, True),
    City("Cologne", "DE", 50.938, 6.960, 1.1, True),
    City("Frankfurt", "DE", 50.110, 8.682, 0.8, True),
    City("Paris", "FR", 48.857, 2.352, 2.2, True),
    City("Lyon", "FR", 45.764, 4.836, 0.9, True),
    City("Marseille", "FR", 43.296, 5.370, 0.9, True),
    City("Toulouse", "FR", 43.605, 1.444, 0.5, True),
    City("Madrid", "ES", 40.417, -3.704, 3.3, True),
    City("Barcelona", "ES", 41.385, 2.173, 1.6, True),
    City("Valencia", "ES", 39.470, -0.376, 0.8, True),
    City("Seville", "ES", 37.389, -5.984, 0.7, True),
    City("Rome", "IT", 41.903, 12.496, 2.8, True),
    City("Milan", "IT", 45.464, 9.190, 1.4, True),
    City("Naples", "IT", 40.852, 14.268, 0.9, True),
    City("Turin", "IT", 45.070, 7.687, 0.8, True),
    City("Amsterdam", "NL", 52.368, 4.904, 0.9, True),
    City("Rotterdam", "NL", 51.924, 4.478, 0.6, True),
    City("Brussels", "BE", 50.850, 4.352, 1.2, True),
    City("Vienna", "AT", 48.208, 16.374, 1.9, True),
    City("Lisbon", "PT", 38.722, -9.139, 0.5, True),
    City("Porto", "PT", 41.150, -8.611, 0.3, True),
    City("Dublin", "IE", 53.350, -6.260, 0.6, True),
    City("Helsinki", "FI", 60.170, 24.938, 0.6, True),
    City("London", "GB", 51.507, -0.128, 2.0, False),
    City("Zurich", "CH", 47.377, 8.541, 0.5, False),
    City("Stockholm", "SE", 59.329, 18.069, 0.5, False),
    City("Copenhagen", "DK", 55.676, 12.568, 0.4, False),
    City("Warsaw", "PL", 52.230, 21.012, 0.6, False),
    City("Prague", "CZ", 50.076, 14.438, 0.5, False),
    City("New York", "US", 40.713, -74.006, 1.2, False),
    City("Istanbul", "TR", 41.008, 28.978, 0.5, False),
    City("Dubai", "AE", 25.205, 55.271, 0.4, False),
    City("Bangkok", "TH", 13.756, 100.502, 0.4, False),
)

# Local currency of each country and its approximate units per euro. Every currency
# listed here has two decimal places, so an amount in minor units is value * 100.
CURRENCY_BY_COUNTRY: dict[str, str] = {
    **{code: "EUR" for code in ("DE", "FR", "ES", "IT", "NL", "BE", "AT", "PT", "IE")},
    "FI": "EUR",
    "GB": "GBP",
    "CH": "CHF",
    "SE": "SEK",
    "DK": "DKK",
    "PL": "PLN",
    "CZ": "CZK",
    "US": "USD",
    "TR": "TRY",
    "AE": "AED",
    "TH": "THB",
}
UNITS_PER_EUR: dict[str, float] = {
    "EUR": 1.0,
    "GBP": 0.85,
    "CHF": 0.94,
    "SEK": 11.3,
    "DKK": 7.46,
    "PLN": 4.3,
    "CZK": 25.0,
    "USD": 1.08,
    "TRY": 35.0,
    "AED": 3.97,
    "THB": 38.0,
}

# Members of the European Economic Area (EU plus Iceland, Liechtenstein and Norway)
# among the countries above. GB and CH are outside it.
EEA_COUNTRIES: tuple[str, ...] = (
    "AT",
    "BE",
    "CZ",
    "DE",
    "DK",
    "ES",
    "FI",
    "FR",
    "IE",
    "IT",
    "NL",
    "PL",
    "PT",
    "SE",
)

MERCHANT_KINDS = ("physical", "online", "atm")
PHYSICAL, ONLINE, ATM = 0, 1, 2


@dataclass(frozen=True)
class Category:
    """A merchant category code with its amount model.

    Attributes:
        mcc: ISO 18245 merchant category code, 4 digits.
        kind: Index into ``MERCHANT_KINDS``.
        median_eur: Median payment amount in euros.
        sigma: Standard deviation of the log amount.
        weight: Relative number of merchants of this category within its kind.
        description: Category name.
    """

    mcc: str
    kind: int
    median_eur: float
    sigma: float
    weight: float
    description: str


CATEGORIES: tuple[Category, ...] = (
    Category("5411", PHYSICAL, 28.0, 0.8, 30.0, "grocery stores, supermarkets"),
    Category("5812", PHYSICAL, 35.0, 0.6, 12.0, "restaurants"),
    Category("5814", PHYSICAL, 11.0, 0.5, 12.0, "fast food"),
    Category("5541", PHYSICAL, 55.0, 0.4, 8.0, "fuel stations"),
    Category("5912", PHYSICAL, 18.0, 0.7, 6.0, "pharmacies"),
    Category("5651", PHYSICAL, 60.0, 0.7, 6.0, "clothing stores"),
    Category("5311", PHYSICAL, 45.0, 0.8, 4.0, "department stores"),
    Category("5732", PHYSICAL, 120.0, 1.0, 2.0, "electronics stores"),
    Category("5944", PHYSICAL, 180.0, 1.0, 0.5, "jewellery stores"),
    Category("7011", PHYSICAL, 140.0, 0.6, 1.0, "hotels"),
    Category("4111", PHYSICAL, 4.0, 0.6, 8.0, "local transport"),
    Category("4121", PHYSICAL, 19.0, 0.5, 3.0, "taxis"),
    Category("5813", PHYSICAL, 16.0, 0.6, 6.0, "bars"),
    Category("5999", PHYSICAL, 30.0, 0.9, 4.0, "miscellaneous retail"),
    Category("5815", ONLINE, 3.0, 0.7, 10.0, "digital media"),
    Category("5816", ONLINE, 5.0, 0.9, 5.0, "digital games"),
    Category("5818", ONLINE, 25.0, 0.8, 4.0, "digital goods"),
    Category("4899", ONLINE, 12.0, 0.3, 6.0, "streaming and subscriptions"),
    Category("5964", ONLINE, 45.0, 0.9, 25.0, "online retail"),
    Category("5691", ONLINE, 65.0, 0.6, 10.0, "online clothing"),
    Category("5045", ONLINE, 150.0, 1.0, 5.0, "online electronics"),
    Category("4722", ONLINE, 250.0, 0.8, 2.0, "travel agencies"),
    Category("4511", ONLINE, 180.0, 0.7, 3.0, "airlines"),
    Category("5942", ONLINE, 20.0, 0.5, 5.0, "books"),
    Category("8398", ONLINE, 15.0, 0.8, 2.0, "charities"),
    Category("4829", ONLINE, 120.0, 1.0, 1.0, "money transfer"),
    Category("7995", ONLINE, 25.0, 1.0, 2.0, "betting"),
    Category("6011", ATM, 100.0, 0.6, 1.0, "cash withdrawal"),
)

# Categories where card testers try stolen card numbers with tiny amounts.
CARD_TESTING_MCCS = ("5815", "5816", "8398", "5964")
# Categories an account takeover turns to: goods and money that resell easily.
ACCOUNT_TAKEOVER_MCCS = ("5045", "4829", "7995", "5818")

# Relative number of payments in each UTC hour, for weekdays and for weekends. Weekdays
# peak at lunch and after work; weekends peak around Saturday midday.
HOURLY_WEEKDAY = np.array(
    [
        0.6,
        0.35,
        0.2,
        0.15,
        0.2,
        0.5,
        1.5,
        3.2,
        4.6,
        5.0,
        5.5,
        6.3,
        7.6,
        7.0,
        5.8,
        5.6,
        6.2,
        7.2,
        7.4,
        6.4,
        4.8,
        3.4,
        2.2,
        1.2,
    ]
)
HOURLY_WEEKEND = np.array(
    [
        1.0,
        0.7,
        0.4,
        0.25,
        0.2,
        0.3,
        0.6,
        1.3,
        2.6,
        4.2,
        5.8,
        7.2,
        8.0,
        7.6,
        6.8,
        6.2,
        6.0,
        6.3,
        6.5,
        6.0,
        4.9,
        3.8,
        2.6,
        1.6,
    ]
)
# Payment volume by weekday, Monday first.
WEEKDAY_FACTORS = np.array([0.92, 0.95, 0.97, 1.0, 1.12, 1.18, 0.80])
# Volume factor on paydays: the 25th to the 28th and the 1st of a month.
PAYDAY_FACTOR = 1.15
PAYDAY_DAYS = (1, 25, 26, 27, 28)
# Volume factor in December (holiday shopping).
DECEMBER_FACTOR = 1.12

# Hours by which a customer's day is later (+) or earlier (-) than the common profile,
# and how often each offset occurs.
HOUR_SHIFTS = np.array([-2, -1, 0, 1, 2, 3])
HOUR_SHIFT_WEIGHTS = np.array([0.08, 0.17, 0.40, 0.20, 0.10, 0.05])

CHANNELS = ("pos", "ecommerce", "atm", "contactless")
POS, ECOMMERCE, ATM_CHANNEL, CONTACTLESS = 0, 1, 2, 3
# Average share of each channel in a customer's payments (by count), in CHANNELS order.
CHANNEL_SHARES = np.array([0.26, 0.20, 0.05, 0.49])

SEGMENTS = ("student", "mass", "affluent")
SEGMENT_WEIGHTS = np.array([0.15, 0.70, 0.15])
# Multiplier of every category median for a customer of each segment.
SEGMENT_SCALES = np.array([0.6, 1.0, 1.9])
