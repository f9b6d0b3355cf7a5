"""Text for ``fraudgen describe``: each output column and each fraud scenario."""

from __future__ import annotations

COLUMN_DESCRIPTIONS: dict[str, str] = {
    "transaction_id": "T + day (YYYYMMDD) + 8-digit position in the day (time order)",
    "timestamp": "authorisation time, UTC, microseconds",
    "card_id": "card that paid",
    "customer_id": "customer who holds the card (1 to 3 cards each)",
    "merchant_id": "merchant, web shop or ATM that was paid",
    "terminal_id": "terminal of the merchant (merchant id + 2-digit number)",
    "amount_minor": "amount in minor units of `currency`, > 0",
    "currency": "ISO 4217 currency of the merchant's country",
    "mcc": "ISO 18245 merchant category code, 4 digits",
    "channel": "pos, ecommerce, atm or contactless",
    "card_present": "false only for ecommerce",
    "merchant_country": "ISO 3166-1 alpha-2 country of the merchant",
    "card_country": "ISO 3166-1 alpha-2 issuing country (the customer's country)",
    "device_id": "device of an ecommerce payment; null when the card is present",
    "customer_lat": "customer home latitude, degrees",
    "customer_lon": "customer home longitude, degrees",
    "merchant_lat": "merchant latitude, degrees (an online shop's home city)",
    "merchant_lon": "merchant longitude, degrees",
    "is_fraud": "ground truth: true for every payment of a fraud scenario",
    "label_available_at": "when the fraud report reaches the bank; null if legitimate",
    "fraud_scenario": "scenario of a fraudulent payment; null if legitimate",
}

SCENARIO_DESCRIPTIONS: dict[str, str] = {
    "card_testing": (
        "bursts of 5-30 online payments of 0.01-2.00 units at one shop within "
        "minutes to hours, from one unseen device; every payment of the burst is fraud"
    ),
    "stolen_card_spree": (
        "3-12 larger payments within 1-48 hours, often abroad, in shops and online "
        "from an unseen device; every payment of the spree is fraud"
    ),
    "account_takeover": (
        "2-8 online payments from one new device, mostly at night and at "
        "electronics, money transfer, betting and digital goods shops; all are fraud"
    ),
    "compromised_merchant": (
        "local cards pay at a skimmed terminal (legitimate), then 2-30 days later "
        "1-3 payments abroad or online are made with them; only those are fraud"
    ),
    "mimicry": (
        "1-3 payments that copy the card's own channels, hours, amounts and devices "
        "at local shops; all are fraud and nearly invisible by design"
    ),
}
