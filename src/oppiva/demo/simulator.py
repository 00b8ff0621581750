"""The retail simulator: a grocery chain's stores, catalogue, members and receipts as import files.

`simulate` writes stores, products, customers and receipts (CSV, JSON lines or Parquet) and the
hidden truth behind them, chunk by chunk so that a million members fit in flat memory; the same
arguments always give byte-identical files. The truths later analyses must find:

- Purchase rates and drop-out follow BG/NBD: each person's visit rate is Gamma(r=1.3, scale
  0.4) per week (`rate`; median about 1.7 visits a month, mean 2.3), and after every repeat
  visit the person drops out for good with probability `dropout_p` ~ Beta(0.7, 12), so churn
  shows within a year (`alive_at_end`). Members who joined before the period are alive at its
  start; the others join during it (`relationship_start`), with an enrolment visit that day.
- Six lifestyles (`LIFESTYLES`) with department-share centres (`DEPARTMENT_SHARES`); each
  person's shares are Dirichlet around the centre (concentration 40) and decide which
  departments a basket draws from, so the lifestyles come back as clusters of shares.
- Staples (`STAPLES`: milk, rye bread, coffee, nappies...): each household keeps to one SKU and
  re-buys it at the first visit after its interval has passed (`interval_days` in
  truth_staples.parquet: the household's need, but at least 1.2 times its mean gap between
  visits, buying more units at a time), and with us only at its `wallet_share` (otherwise it
  buys that round elsewhere): regular cycles per customer and SKU.
- Basket sizes are 1 + negative binomial around a per-person mean (web orders 2.2 times as
  large); deal hunters (high `price_sensitivity`) draw far more lines from the week's
  promotions (about 5% of products, 10-40% off), which carry the discount.
- Store loyalty: a home store with a share below 100% (`home_share`), the other till visits
  at the other stores; some members also shop online (web or app) for a share of their visits.
- Within a department, lifestyles prefer different products: budget shoppers the cheap and the
  own label, gourmets the dear, the health-conscious the organic, families the baby products.
- Weekly and daily seasonality: busy Friday and Saturday, quieter Sunday; stores open 8-21 with
  peaks at 16-18 and a lull at 14-16 on weekdays (seniors shop in the morning, young urbanites
  late); the web shop takes orders around the clock with an evening peak; a Christmas rush,
  Christmas Day closed (the web shop follows the stores' weekly pattern, so it too); garden
  goods sell in spring, drinks in summer and December.
- Products launched during the period (`launch_date`) sell only from that day, adopted mostly
  by their target lifestyle (young urbanites, gourmets and the health-conscious try new
  things most).
- Identifiers: members show their card at most till visits (`card_share`), otherwise pay with
  one of their payment cards (a stable `payment_token`) or stay anonymous; web and app orders
  carry the email, sometimes the phone and sometimes the card too. Non-members (`shoppers`,
  truth ref N...) pay with a token of their own or in cash. About 2% of lines are returned.

Besides the import files, the truth: truth.parquet (one row per member: lifestyle, rate,
dropout_p, home_store and the other drivers), truth_staples.parquet, truth_products.parquet
(launch target lifestyles, popularity) and truth_receipts.parquet (who made each receipt).

Simplified: prices do not change over the period; promotions are the same in every store;
returns are of undiscounted lines only (a refund line is the exact negative of the sale); a
basket may hold the same SKU twice; non-members never shop online.
"""

from __future__ import annotations

import json
import queue
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

from oppiva.customers.bulk import DENIED
from oppiva.demo.sample import CITIES, FAMILY, GIVEN, STREETS

Ints = npt.NDArray[np.integer[Any]]
Floats = npt.NDArray[np.floating[Any]]
Bools = npt.NDArray[np.bool_]
Bytes = npt.NDArray[np.uint8]

FORMATS: Final = ("csv", "jsonl", "parquet")
TIMEZONE: Final = ZoneInfo("Europe/Helsinki")
CHUNK: Final = 5_000
SHOPPERS_PER_MEMBER: Final = 0.35
RETURN_SHARE: Final = 0.02
RETURNED_PER_RECEIPT: Final = 0.5
WEB_BASKET: Final = 2.2
SECONDS: Final = 86_400

LIFESTYLES: Final = ("family", "young_urban", "senior", "health", "budget", "gourmet")
LIFESTYLE_MIX: Final = (0.24, 0.18, 0.18, 0.14, 0.16, 0.10)
DEPARTMENTS: Final = (
    "fresh food",
    "dairy",
    "bakery",
    "pantry",
    "drinks",
    "household",
    "baby & kids",
    "garden & balcony",
    "home & leisure",
)
# One row per lifestyle, one column per department; every row sums to 1.
DEPARTMENT_SHARES: Final = np.array(
    [
        [0.20, 0.15, 0.09, 0.14, 0.07, 0.10, 0.17, 0.03, 0.05],
        [0.17, 0.09, 0.07, 0.13, 0.26, 0.07, 0.01, 0.03, 0.17],
        [0.26, 0.19, 0.16, 0.17, 0.06, 0.08, 0.01, 0.05, 0.02],
        [0.38, 0.14, 0.06, 0.12, 0.09, 0.06, 0.01, 0.06, 0.08],
        [0.17, 0.17, 0.12, 0.22, 0.09, 0.17, 0.02, 0.01, 0.03],
        [0.30, 0.12, 0.09, 0.12, 0.24, 0.04, 0.01, 0.04, 0.04],
    ]
)
SHARE_CONCENTRATION: Final = 40.0
RATE_SHAPE: Final = 1.3
RATE_SCALE: Final = 0.4
DROPOUT_A: Final = 0.7
DROPOUT_B: Final = 12.0
# subgroup: (days one purchase lasts a household, share of each lifestyle that re-buys it)
STAPLES: Final[dict[str, tuple[float, tuple[float, ...]]]] = {
    "milk": (5.0, (0.85, 0.45, 0.75, 0.35, 0.75, 0.5)),
    "oat drinks": (6.0, (0.15, 0.3, 0.05, 0.65, 0.05, 0.2)),
    "rye bread": (5.0, (0.7, 0.35, 0.8, 0.55, 0.65, 0.45)),
    "coffee": (16.0, (0.7, 0.55, 0.85, 0.5, 0.7, 0.75)),
    "eggs": (10.0, (0.55, 0.3, 0.5, 0.5, 0.45, 0.5)),
    "butter & spreads": (14.0, (0.6, 0.3, 0.65, 0.3, 0.6, 0.5)),
    "yoghurt": (5.0, (0.6, 0.4, 0.35, 0.6, 0.3, 0.35)),
    "nappies": (9.0, (0.6, 0.0, 0.0, 0.0, 0.03, 0.0)),
    "baby food": (4.0, (0.45, 0.0, 0.0, 0.0, 0.02, 0.0)),
    "toilet paper": (21.0, (0.55, 0.35, 0.5, 0.35, 0.6, 0.3)),
    "pet food": (8.0, (0.2, 0.1, 0.2, 0.15, 0.15, 0.15)),
    "beer": (8.0, (0.1, 0.45, 0.05, 0.05, 0.15, 0.25)),
}

_NL, _ND = len(LIFESTYLES), len(DEPARTMENTS)
_BASKET_MEAN = np.array([8.0, 4.0, 5.0, 6.0, 6.5, 6.0])
_NOVELTY = np.array([0.02, 0.06, 0.005, 0.05, 0.01, 0.05])
_ONLINE = np.array([0.45, 0.5, 0.12, 0.35, 0.2, 0.4])
_DEAL_HUNTERS = np.array([0.25, 0.15, 0.2, 0.1, 0.6, 0.05])
_PRICE_TILT = np.array([-0.5, 0.0, -0.5, 0.3, -2.0, 1.5])
_ORGANIC_TILT = np.array([1.0, 1.3, 0.8, 3.0, 0.4, 1.8])
_OWN_LABEL_TILT = np.array([1.3, 1.0, 1.2, 0.8, 2.5, 0.5])
_UNITS_P = np.array([0.6, 0.8, 0.8, 0.75, 0.65, 0.75])
_HOUSEHOLD = np.array([0.75, 1.1, 1.0, 1.0, 0.9, 1.0])
_AGE = np.array([[28, 48], [20, 33], [63, 88], [25, 60], [20, 80], [30, 70]])

_WEEKDAY_WEIGHT = np.array([0.85, 0.85, 0.9, 1.0, 1.3, 1.4, 0.7])
_MONTH_WEIGHT = np.array([0.92, 0.92, 0.97, 1.0, 1.02, 1.03, 0.93, 1.0, 1.0, 1.0, 1.02, 1.12])
_DAY_FACTOR = {(12, 25): 0.0, (12, 24): 0.7, (12, 31): 1.3} | {(12, d): 1.5 for d in range(19, 24)}
_SEASON = np.ones((_ND, 12))
_SEASON[4] = [0.85, 0.85, 0.85, 0.85, 0.9, 1.0, 1.0, 1.0, 0.85, 0.85, 0.85, 1.0]
_SEASON[7] = [0.15, 0.15, 0.3, 0.7, 1.0, 1.0, 0.7, 0.45, 0.3, 0.2, 0.15, 0.2]
_SEASON[8] = [0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 1.0, 1.0]
# Hour weights: till on weekdays, till at weekends, web; tilted per lifestyle.
_HOURS = np.zeros((3, 24))
_HOURS[0, 8:21] = [0.45, 0.55, 0.7, 0.9, 1.0, 0.8, 0.42, 0.5, 1.35, 1.5, 1.05, 0.6, 0.32]
_HOURS[1, 8:21] = [0.3, 0.55, 0.9, 1.2, 1.3, 1.25, 1.05, 0.95, 0.9, 0.8, 0.6, 0.4, 0.25]
_HOURS[2, :12] = [0.3, 0.15, 0.08, 0.05, 0.05, 0.1, 0.3, 0.6, 0.8, 0.9, 1.0, 1.0]
_HOURS[2, 12:] = [1.1, 1.0, 0.9, 0.9, 1.0, 1.1, 1.3, 1.5, 1.6, 1.4, 1.0, 0.6]
_HOUR_TILT = np.ones((_NL, 24))
_HOUR_TILT[0, 16:19], _HOUR_TILT[0, 8:11] = 1.3, 0.8
_HOUR_TILT[1, 8:12], _HOUR_TILT[1, 18:24] = 0.5, 1.7
_HOUR_TILT[2, 8:13], _HOUR_TILT[2, 13:16], _HOUR_TILT[2, 16:21] = 2.0, 1.2, 0.5

# department | group | subgroup | nouns | sizes (- for none) | price range | products | flag
_TAXONOMY: Final = """
fresh food | fruit & vegetables | fruit | apples, pears, oranges, bananas, grapes, kiwis, plums, lemons | - | 1.20-4.50 | 52 | kg
fresh food | fruit & vegetables | berries | strawberries, blueberries, raspberries, lingonberries | 250 g, 500 g | 2.50-7.90 | 29
fresh food | fruit & vegetables | vegetables | tomatoes, cucumbers, peppers, carrots, onions, broccoli, cauliflower, courgettes | - | 1.00-5.90 | 60 | kg
fresh food | fruit & vegetables | salads & herbs | iceberg lettuce, rocket, basil, dill, parsley, mixed salad | - | 1.20-3.90 | 34
fresh food | fruit & vegetables | potatoes & roots | new potatoes, floury potatoes, beetroot, swede, parsnips | - | 0.90-3.50 | 26 | kg
fresh food | meat | minced meat | beef mince, pork and beef mince, chicken mince | 400 g, 800 g | 3.50-9.90 | 34
fresh food | meat | chicken | chicken breast fillets, chicken thigh fillets, whole chicken, chicken drumsticks | - | 4.50-11.90 | 39
fresh food | meat | pork & beef | pork chops, pork tenderloin, beef steak, sirloin, stewing beef | - | 5.90-24.90 | 39 | kg
fresh food | meat | sausages | grill sausage, wieners, chorizo, ring sausage | 300 g, 400 g, 600 g | 2.20-6.90 | 39
fresh food | meat | cold cuts | smoked ham, salami, turkey slices, roast beef slices | 150 g, 300 g | 1.90-5.90 | 42
fresh food | fish | fresh fish | salmon fillet, rainbow trout, pike-perch fillet, perch fillet, baltic herring | - | 9.90-34.90 | 29 | kg
fresh food | fish | smoked & salted fish | cold-smoked salmon, hot-smoked salmon, salted whitefish, herring in mustard | 150 g, 250 g | 3.50-12.90 | 31
fresh food | ready meals | ready meals | meatballs and mash, lasagne, chicken curry, salmon soup, macaroni casserole, karelian pasties | 300 g, 400 g | 2.90-7.90 | 57
fresh food | ready meals | salads & sandwiches | caesar salad, pasta salad, chicken sandwich, falafel wrap | - | 3.20-6.90 | 34
fresh food | ready meals | plant protein | tofu, pulled oats, tempeh, falafel, soy mince | 250 g, 300 g | 2.50-5.90 | 36
dairy | milk & cream | milk | skimmed milk, semi-skimmed milk, whole milk, lactose-free milk, buttermilk | 1 l, 1.5 l | 0.79-2.29 | 39
dairy | milk & cream | cream | cooking cream, whipping cream, sour cream, crème fraîche | 2 dl, 5 dl | 0.90-3.49 | 31
dairy | milk & cream | oat drinks | oat drink, barista oat drink, chocolate oat drink, soy drink | 1 l | 1.39-2.79 | 23
dairy | yoghurt & quark | yoghurt | natural yoghurt, strawberry yoghurt, greek yoghurt, vanilla yoghurt, skyr | 150 g, 1 kg | 0.69-3.99 | 49
dairy | yoghurt & quark | quark & puddings | vanilla quark, plain quark, rice pudding, chocolate pudding | 200 g, 500 g | 0.79-2.99 | 34
dairy | cheese | cheese | emmental, edam, gouda, cheddar, blue cheese, brie, squeaky cheese | 250 g, 500 g, 1 kg | 2.49-14.90 | 65
dairy | cheese | deli cheese | parmigiano reggiano, aged gruyère, manchego, goat cheese, burrata | 150 g, 200 g | 4.90-12.90 | 34
dairy | eggs & butter | eggs | free-range eggs, barn eggs, organic eggs | 6 pcs, 10 pcs, 15 pcs | 1.89-5.49 | 21
dairy | eggs & butter | butter & spreads | butter, spreadable butter, plant-based spread, margarine | 250 g, 400 g, 600 g | 1.99-5.99 | 31
bakery | bread | rye bread | rye bread, rye crispbread, sour rye loaf, rye rings | - | 1.49-3.99 | 39
bakery | bread | wheat bread | toast bread, baguette, ciabatta, multigrain loaf, sourdough loaf | - | 1.29-4.49 | 47
bakery | bread | gluten-free bread | gluten-free loaf, gluten-free rolls, oat bread | - | 2.99-5.49 | 18
bakery | pastries | buns & pastries | cinnamon bun, cardamom bun, croissant, doughnut, danish pastry | - | 0.89-4.99 | 44
bakery | pastries | cakes & biscuits | strawberry cake, carrot cake, oat biscuits, gingerbread, cookies | - | 1.99-14.90 | 39
pantry | dry goods | pasta & rice | spaghetti, penne, jasmine rice, basmati rice, couscous, quinoa | 500 g, 1 kg | 0.89-4.49 | 49
pantry | dry goods | flour & baking | wheat flour, rye flour, sugar, baking powder, oat flakes | - | 0.79-3.99 | 36
pantry | dry goods | breakfast cereals | muesli, granola, corn flakes, porridge oats | 500 g, 750 g | 1.49-5.99 | 36
pantry | coffee & tea | coffee | light roast coffee, dark roast coffee, espresso beans, filter coffee, instant coffee | 500 g, 1 kg | 3.99-14.90 | 39
pantry | coffee & tea | tea | black tea, green tea, herbal tea, rooibos | 20 bags, 40 bags | 1.69-5.49 | 26
pantry | cooking | sauces & spices | ketchup, mustard, pasta sauce, curry paste, black pepper, sea salt | - | 0.99-4.99 | 57
pantry | cooking | oils & vinegars | rapeseed oil, olive oil, balsamic vinegar, sesame oil | 500 ml, 1 l | 2.49-12.90 | 26
pantry | cooking | canned food | chopped tomatoes, chickpeas, kidney beans, tuna, coconut milk, sweetcorn | - | 0.69-3.49 | 47
pantry | sweets & snacks | sweets | salty liquorice, milk chocolate, dark chocolate, fruit gums, pick and mix | - | 0.99-6.99 | 60
pantry | sweets & snacks | crisps & nuts | potato crisps, tortilla chips, cashews, salted peanuts, popcorn | - | 1.49-5.49 | 47
drinks | soft drinks | soft drinks | cola, lemon soda, orange soda, ginger ale, energy drink | 0.33 l, 1.5 l | 0.99-3.49 | 49
drinks | soft drinks | juices | orange juice, apple juice, blackcurrant juice, smoothie | 1 l | 1.49-4.49 | 36
drinks | soft drinks | water | sparkling water, still water, flavoured water | 0.5 l, 1.5 l | 0.59-1.99 | 26
drinks | beer & cider | beer | lager, pale ale, ipa, stout, wheat beer, alcohol-free lager | 0.33 l, 0.5 l, 6 x 0.33 l | 1.49-12.90 | 65 | age
drinks | beer & cider | cider & long drinks | pear cider, apple cider, gin long drink, grapefruit long drink | 0.33 l, 0.5 l | 1.99-3.99 | 42 | age
drinks | wine | wine | red wine, white wine, rosé, sparkling wine | 0.75 l | 8.90-29.90 | 49 | age
household | cleaning | detergents | laundry detergent, fabric softener, dishwasher tablets, washing-up liquid | - | 2.49-12.90 | 42
household | cleaning | cleaning supplies | all-purpose cleaner, sponges, bin bags, microfibre cloths | - | 1.29-6.99 | 36
household | paper | toilet paper | toilet paper, kitchen roll, tissues | 8 rolls, 16 rolls | 2.99-9.99 | 23
household | personal care | personal care | shampoo, conditioner, shower gel, toothpaste, deodorant, hand soap | - | 1.49-7.99 | 65
household | pets | pet food | wet cat food, dry cat food, dog food, cat litter | - | 1.29-19.90 | 39 | pet
baby & kids | baby | nappies | nappies size 3, nappies size 4, nappies size 5, pull-ups | - | 8.90-17.90 | 26 | baby
baby & kids | baby | baby food | fruit purée, vegetable purée, baby porridge, infant formula | - | 0.99-12.90 | 42 | baby
baby & kids | baby | baby care | wet wipes, baby lotion, baby shampoo, nappy cream | - | 1.99-7.99 | 26 | baby
baby & kids | kids | kids' snacks | fruit bars, juice drinks, mini cheeses, kids' yoghurt | - | 0.79-3.99 | 34 | kids
baby & kids | kids | toys & school | crayons, jigsaw puzzle, toy car, colouring book, school notebook | - | 1.99-24.90 | 42 | kids
garden & balcony | plants | balcony plants | petunia, geranium, herb pot, strawberry plant, hanging basket | - | 2.99-19.90 | 36 | balcony
garden & balcony | plants | garden plants | rose bush, lilac, hydrangea, seed potatoes, flower bulbs | - | 3.99-29.90 | 29 | garden
garden & balcony | garden care | soil & fertiliser | potting soil, fertiliser, bark mulch, compost | - | 2.99-14.90 | 26 | garden
garden & balcony | outdoor | grill & outdoor | charcoal, disposable grill, lighter fluid, garden candles, balcony chair | - | 2.99-49.90 | 36 | balcony
home & leisure | kitchen | kitchenware | frying pan, chopping board, storage jars, baking tray, coffee mugs | - | 3.99-39.90 | 42
home & leisure | home | home textiles | bath towel, bed linen, cushion cover, tablecloth | - | 7.99-39.90 | 34
home & leisure | home | candles & decor | candles, tea lights, vase, photo frame | - | 1.99-19.90 | 36
home & leisure | leisure | magazines & books | weekly magazine, crossword magazine, paperback novel, cookbook | - | 3.49-24.90 | 36
home & leisure | leisure | sports & outdoors | water bottle, yoga mat, reflective vest, thermos flask | - | 4.99-29.90 | 29
home & leisure | leisure | electronics | phone charger, batteries, headphones, light bulbs | - | 2.99-39.90 | 36
"""
_BRANDS: Final = (
    ("Puoti", "Puoti Premium", "Pohjolan", "Metsälä", "Järvi", "Luomutila"),
    ("Puoti", "Puoti Premium", "Kide", "Aamu", "Laakso", "Luomutila"),
    ("Puoti", "Puoti Premium", "Leipuri", "Ruska", "Kotiuuni"),
    ("Puoti", "Puoti Premium", "Sampo", "Helmi", "Tuuli", "Kultainen"),
    ("Puoti", "Puoti Premium", "Lähde", "Kuohu", "Panimo Kivi", "Saaristo"),
    ("Puoti", "Puoti Premium", "Puhdas", "Lumo", "Hoiva"),
    ("Puoti", "Puoti Premium", "Pikku", "Nalle", "Touhu"),
    ("Puoti", "Puoti Premium", "Viherpiha", "Kasvu", "Parveke"),
    ("Puoti", "Puoti Premium", "Koti", "Ilta", "Vapaa", "Kipinä"),
)
_BRAND_PRICE: Final = {"Puoti": 0.8, "Puoti Premium": 1.3}
_ADJECTIVES: Final = ("", "", "", "organic", "Finnish", "family-size", "light")
_FLAG_ATTRIBUTES: Final[dict[str, dict[str, Any]]] = {
    "kg": {"unit": "kg"},
    "age": {"age_limit": 18},
    "baby": {"audience": "baby"},
    "kids": {"audience": "kids"},
    "balcony": {"requires": "balcony"},
    "garden": {"requires": "garden"},
    "pet": {"requires": "pet"},
}
_STORES: Final = (
    ("kamppi", "Puoti Kamppi", "Helsinki"),
    ("hervanta", "Puoti Hervanta", "Tampere"),
    ("skanssi", "Puoti Skanssi", "Turku"),
    ("itis", "Puoti Itis", "Helsinki"),
    ("seppala", "Puoti Seppälä", "Jyväskylä"),
    ("linnanmaa", "Puoti Linnanmaa", "Oulu"),
    ("matkus", "Puoti Matkus", "Kuopio"),
    ("trio", "Puoti Trio", "Lahti"),
    ("rewell", "Puoti Rewell", "Vaasa"),
    ("ruoholahti", "Puoti Ruoholahti", "Helsinki"),
    ("kaleva", "Puoti Kaleva", "Tampere"),
    ("hamppari", "Puoti Hamppari", "Turku"),
)
_DOMAINS: Final = ("example.fi", "example.com", "example.net")
_PHONE_DIGIT: Final = np.array([0, 1, 4, 5])
SOURCES: Final = ("till", "webshop")
_RECEIPT_LETTER: Final = np.frombuffer(b"TW", dtype=np.uint8)

_TEXT = pa.string()
_KEY = pa.dictionary(pa.int32(), pa.string())
_MONEY = pa.decimal64(10, 2)
STORE_SCHEMA: Final = pa.schema(
    [("code", _TEXT), ("name", _TEXT), ("kind", _TEXT), ("city", _TEXT)]
)
PRODUCT_SCHEMA: Final = pa.schema(
    [
        ("sku", _TEXT),
        ("name", _TEXT),
        ("department", _TEXT),
        ("group", _TEXT),
        ("subgroup", _TEXT),
        ("brand", _TEXT),
        ("price", _MONEY),
        ("cost", _MONEY),
        ("launch_date", pa.date32()),
        ("attributes", _TEXT),
    ]
)
CUSTOMER_SCHEMA: Final = pa.schema(
    [
        ("customer_ref", _TEXT),
        ("name", _TEXT),
        ("given_name", _TEXT),
        ("family_name", _TEXT),
        ("language", _TEXT),
        ("birthday", pa.date32()),
        ("relationship_start", pa.date32()),
        ("email", _TEXT),
        ("phone", _TEXT),
        ("card", _TEXT),
        ("street", _TEXT),
        ("postal_code", _TEXT),
        ("city", _TEXT),
        ("consent_profiling", _TEXT),
        ("consent_personalised_offers", _TEXT),
        ("consent_marketing", _TEXT),
    ]
)
RECEIPT_SCHEMA: Final = pa.schema(
    [
        ("source", _KEY),
        ("receipt_id", _KEY),
        ("purchased_at", _KEY),
        ("store", _KEY),
        ("card", _KEY),
        ("email", _KEY),
        ("phone", _KEY),
        ("payment_token", _KEY),
        ("currency", _KEY),
        ("line_no", pa.int32()),
        ("sku", _KEY),
        ("quantity", pa.float64()),
        ("unit_price", _MONEY),
        ("discount", _MONEY),
        ("line_total", _MONEY),
        ("returns_receipt_id", _KEY),
    ]
)
SHARE_COLUMNS: Final = tuple(
    "share_" + d.replace(" & ", "_").replace(" ", "_") for d in DEPARTMENTS
)
TRUTH_SCHEMA: Final = pa.schema(
    [
        ("customer_ref", _TEXT),
        ("lifestyle", _TEXT),
        ("rate", pa.float64()),
        ("dropout_p", pa.float64()),
        ("home_store", _TEXT),
        ("alive_at_end", pa.bool_()),
        ("purchases", pa.int32()),
        ("price_sensitivity", pa.float64()),
        ("home_share", pa.float64()),
        ("online_share", pa.float64()),
        ("card_share", pa.float64()),
        ("wallet_share", pa.float64()),
        ("basket_mean", pa.float64()),
        *[(name, pa.float64()) for name in SHARE_COLUMNS],
    ]
)
STAPLE_SCHEMA: Final = pa.schema(
    [("customer_ref", _KEY), ("staple", _KEY), ("sku", _KEY), ("interval_days", pa.float64())]
)
RECEIPT_TRUTH_SCHEMA: Final = pa.schema(
    [("source", _KEY), ("receipt_id", _KEY), ("customer_ref", _KEY)]
)
PRODUCT_TRUTH_SCHEMA: Final = pa.schema(
    [
        ("sku", _TEXT),
        ("staple", _TEXT),
        ("launch_lifestyle", _TEXT),
        ("popularity", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Truth:
    """Where the hidden truth behind a simulation lies, for tests of later analyses."""

    customers: Path
    staples: Path
    products: Path
    receipts: Path


@dataclass
class SimulationSummary:
    """What `simulate` wrote: counts, the files and the truth behind them."""

    truth: Truth
    stores: int = 0
    products: int = 0
    customers: int = 0
    shoppers: int = 0
    receipts: int = 0
    till_receipts: int = 0
    web_receipts: int = 0
    lines: int = 0
    returns: int = 0
    return_receipts: int = 0
    anonymous_receipts: int = 0
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Segments:
    """Many discrete distributions in one sorted array: one searchsorted draws from each row's own.

    Built in a few vector operations, so it suits distributions that change with every chunk
    (each person's department shares).
    """

    cum: Floats
    start: Ints

    @classmethod
    def rows(cls, weights: Floats) -> _Segments:
        """One distribution per row of `weights` over the column numbers."""
        count, width = weights.shape
        cum = np.cumsum(weights, axis=1)
        cum = cum / cum[:, -1:] + np.arange(count)[:, None]
        return cls(cum.ravel(), np.arange(count + 1) * width)

    def draw(self, segment: Ints, u: Floats) -> Ints:
        """The column drawn for each row's segment, for uniforms `u` in [0, 1)."""
        position = np.searchsorted(self.cum, segment + u, side="right")
        position = np.clip(position, self.start[segment], self.start[segment + 1] - 1)
        return position - self.start[segment]


@dataclass(frozen=True)
class _Alias:
    """Walker alias tables for many discrete distributions: a draw per row in constant time."""

    start: Ints
    size: Ints
    keep: Floats
    alias: Ints
    items: Ints

    @classmethod
    def build(cls, segment: Ints, items: Ints, weights: Floats, count: int) -> _Alias:
        """Group `items` by `segment` (0..count-1) and build each group's table (Vose's method)."""
        order = np.argsort(segment, kind="stable")
        chosen, weight = items[order], weights[order].astype(np.float64)
        size = np.bincount(segment, minlength=count)
        start = np.cumsum(size) - size
        keep = np.ones(len(chosen))
        alias = np.arange(len(chosen))
        for first, n in zip(start.tolist(), size.tolist(), strict=True):
            if n == 0:
                continue
            scaled = weight[first : first + n] * (n / weight[first : first + n].sum())
            small = [i for i in range(n) if scaled[i] < 1.0]
            large = [i for i in range(n) if scaled[i] >= 1.0]
            while small and large:
                low, high = small.pop(), large[-1]
                keep[first + low] = scaled[low]
                alias[first + low] = first + high
                scaled[high] -= 1.0 - scaled[low]
                if scaled[high] < 1.0:
                    small.append(large.pop())
        return cls(start, size, keep, alias, chosen)

    def draw(self, segment: Ints, u: Floats) -> Ints:
        """One item per row from the row's (non-empty) segment, for uniforms `u` in [0, 1)."""
        size = self.size[segment]
        scaled = u * size
        slot = np.minimum(scaled.astype(np.int64), size - 1)
        position = self.start[segment] + slot
        chosen = np.where(scaled - slot < self.keep[position], position, self.alias[position])
        return self.items[chosen]


@dataclass(frozen=True)
class _Calendar:
    """The simulated days: weekday, month, visit weight, and the Helsinki offset at each hour."""

    days: int
    epoch_day: int
    weekday: Ints
    month: Ints
    ymd: Ints
    open: Bools
    cum: Floats
    offset: Ints
    gap: Ints


@dataclass(frozen=True)
class _Catalogue:
    """The products as arrays, with the distributions that baskets draw from."""

    table: Any
    truth: Any
    sku: Any
    price: Ints
    weighed: Bools
    regular: _Alias
    promo: _Alias
    promo_pct: Ints
    staples: _Alias
    launch_span: int
    launch_key: Ints
    launch_items: Ints
    launch_by_day: Ints
    launch_days: Ints


@dataclass(frozen=True)
class _World:
    """Everything fixed for a seed: calendar, stores, catalogue and time-of-day profiles."""

    seed: int
    calendar: _Calendar
    stores: int
    store_codes: Any
    store_cities: list[str]
    store_popularity: Floats
    catalogue: _Catalogue
    hours: _Alias


@dataclass(frozen=True)
class _People:
    """One chunk's members, then its non-member shoppers, and the drivers of their shopping."""

    count: int
    members: int
    number: Ints
    lifestyle: Ints
    rate: Floats
    dropout: Floats
    start_day: Ints
    acquired: Bools
    shares: Floats
    basket: Floats
    sensitivity: Floats
    home: Ints
    home_share: Floats
    online: Floats
    app: Floats
    card: Bools
    card_share: Floats
    email: Bools
    phone: Bools
    tokens: Ints
    token_share: Floats
    wallet: Floats


@dataclass(frozen=True)
class _Visits:
    """Sales receipts, sorted by person and time, with the identifiers each one carries."""

    person: Ints
    day: Ints
    second: Ints
    store: Ints
    web: Bools
    card: Bools
    email: Bools
    phone: Bools
    token: Ints
    first: Ints
    count: Ints
    alive: Bools


@dataclass(frozen=True)
class _Staples:
    """Who re-buys which staple SKU how often, and the lines that came of it."""

    owner: Ints
    staple: Ints
    sku: Ints
    interval: Floats
    receipt: Ints
    product: Ints
    units: Ints


@dataclass(frozen=True)
class _Identifiers:
    """The members' names and identifiers, indexed like the people (members come first)."""

    given: Any
    family: Any
    email: Any
    phone: Any
    card: Any


@dataclass(frozen=True)
class _Chunk:
    """The tables one chunk adds, and its counts."""

    customers: Any
    receipts: Any
    truth: Any
    staples: Any
    receipt_truth: Any
    till_receipts: int
    web_receipts: int
    lines: int
    returns: int
    return_receipts: int
    anonymous: int


def _ascii(text: str) -> str:
    """Lower-case ASCII for email addresses: Järvinen -> jarvinen."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _strings(matrix: Bytes) -> Any:
    """A string array from a matrix of ASCII bytes, one fixed-width row per value."""
    rows, width = matrix.shape
    offsets = np.arange(rows + 1, dtype=np.int32) * width
    data = np.ascontiguousarray(matrix)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))


def _put_digits(matrix: Bytes, column: int, numbers: Ints, width: int) -> None:
    """Write `numbers` zero-padded into `width` columns of `matrix` as ASCII digits."""
    rest = numbers.astype(np.int64)
    for place in range(column + width - 1, column - 1, -1):
        matrix[:, place] = rest % 10 + 48
        rest = rest // 10


def _digits(prefix: str, numbers: Ints, width: int, letters: Bytes | None = None) -> Any:
    """`prefix` (or a first letter per row) and the zero-padded numbers, e.g. C0000042."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    lead = len(head) + (letters is not None)
    matrix = np.empty((len(numbers), lead + width), dtype=np.uint8)
    if letters is not None:
        matrix[:, 0] = letters
    matrix[:, lead - len(head) : lead] = head
    _put_digits(matrix, lead, numbers, width)
    return _strings(matrix)


def _tokens(rng: np.random.Generator, count: int) -> Any:
    """Random-looking payment tokens, tok_ and 24 hexadecimal digits."""
    raw = rng.integers(0, 256, size=(count, 12), dtype=np.uint8)
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    matrix = np.empty((count, 28), dtype=np.uint8)
    matrix[:, :4] = np.frombuffer(b"tok_", dtype=np.uint8)
    matrix[:, 4::2] = hexdigits[raw >> 4]
    matrix[:, 5::2] = hexdigits[raw & 15]
    return _strings(matrix)


def _money(cents: Ints) -> Any:
    """Euros with two decimals, straight from integer cents (decimal64 holds the cents as is)."""
    values = np.ascontiguousarray(cents, dtype=np.int64)
    return pa.Array.from_buffers(_MONEY, len(values), [None, pa.py_buffer(values)])


def _keyed(indices: Any, dictionary: Any) -> Any:
    """A dictionary column: `indices` (an Arrow int32 array, often shared) into `dictionary`."""
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _index(values: Ints) -> Any:
    """An Arrow int32 index array, to be shared by the dictionary columns it indexes."""
    return pa.array(np.ascontiguousarray(values, dtype=np.int32))


def _dates(days: Ints, missing: Bools | None = None) -> Any:
    """date32 values from days since 1970-01-01."""
    return pa.array(days.astype(np.int32), mask=missing).cast(pa.date32())


def _unless(present: Bools, values: Any) -> Any:
    """`values` where `present`, null elsewhere."""
    return pc.if_else(pa.array(present), values, pa.scalar(None, _TEXT))


def _calendar(start: date, weeks: int) -> _Calendar:
    """The period's days with their visit weights (in weeks) and UTC offsets per local hour."""
    days = weeks * 7
    dates = [start + timedelta(days=d) for d in range(days)]
    weekday = np.array([d.weekday() for d in dates], dtype=np.int64)
    month = np.array([d.month - 1 for d in dates], dtype=np.int64)
    ymd = np.array([(d.year, d.month, d.day) for d in dates], dtype=np.int64).reshape(days, 3)
    factor = np.array([_DAY_FACTOR.get((d.month, d.day), 1.0) for d in dates])
    weight = _WEEKDAY_WEIGHT[weekday] * _MONTH_WEIGHT[month] * factor
    weight *= weeks / weight.sum()
    offset = np.zeros((days, 24), dtype=np.int64)
    gap = np.zeros((days, 24), dtype=np.int64)
    for d, day in enumerate(dates):
        for hour in range(24):
            naive = datetime(day.year, day.month, day.day, hour, 30)
            local = naive.replace(tzinfo=TIMEZONE)
            utcoffset = local.utcoffset() or timedelta()
            offset[d, hour] = int(utcoffset.total_seconds()) // 60
            # A local hour skipped when the clocks go forward is moved to the next one.
            gap[d, hour] = local.astimezone(UTC).astimezone(TIMEZONE).replace(tzinfo=None) != naive
    return _Calendar(
        days=days,
        epoch_day=(start - date(1970, 1, 1)).days,
        weekday=weekday,
        month=month,
        ymd=ymd,
        open=weight > 0,
        cum=np.concatenate(([0.0], np.cumsum(weight))),
        offset=offset,
        gap=gap,
    )


def _price_cents(euros: float) -> int:
    """Shelf prices end in 9: 3.49, 12.99."""
    return max(19, round(euros * 10) * 10 - 1)


def _taxonomy() -> list[tuple[int, str, str, list[str], list[str], float, float, int, str]]:
    """The rows of `_TAXONOMY`, parsed: department number, names, nouns, sizes, prices, count."""
    rows = []
    for line in _TAXONOMY.strip().splitlines():
        dept, group, subgroup, nouns, sizes, prices, count, *flag = (
            part.strip() for part in line.split("|")
        )
        low, high = (float(p) for p in prices.split("-"))
        rows.append(
            (
                DEPARTMENTS.index(dept),
                group,
                subgroup,
                [n.strip() for n in nouns.split(",")],
                [] if sizes == "-" else [s.strip() for s in sizes.split(",")],
                low,
                high,
                int(count),
                flag[0] if flag else "",
            )
        )
    return rows


def _catalogue(rng: np.random.Generator, calendar: _Calendar) -> _Catalogue:
    """About 2,500 products over nine departments, the launches and the weekly promotions."""
    rows: list[dict[str, Any]] = []
    names: set[str] = set()
    taxonomy = _taxonomy()
    for index, (dept, group, subgroup, nouns, sizes, low, high, count, flag) in enumerate(taxonomy):
        brands = _BRANDS[dept]
        for n in range(count):
            noun = nouns[n % len(nouns)]
            for _ in range(6):
                brand = brands[int(rng.integers(len(brands)))]
                adjective = _ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]
                size = sizes[int(rng.integers(len(sizes)))] if sizes else ""
                name = " ".join(part for part in (brand, adjective, noun, size) if part)
                if name not in names:
                    break
            else:
                name = f"{name} ({n + 1})"
            names.add(name)
            euros = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            price = _price_cents(euros * _BRAND_PRICE.get(brand, 1.0))
            attributes = dict(_FLAG_ATTRIBUTES.get(flag, {}))
            if adjective == "organic":
                attributes["organic"] = True
            rows.append(
                {
                    "name": name,
                    "group": group,
                    "subgroup": subgroup,
                    "brand": brand,
                    "price": price,
                    "cost": min(price - 1, int(price * rng.uniform(0.55, 0.82))),
                    "attributes": json.dumps(attributes, ensure_ascii=False)
                    if attributes
                    else None,
                    "dept": dept,
                    "index": index,
                    "weighed": flag == "kg",
                    "organic": adjective == "organic",
                    "own_label": brand == "Puoti",
                    "baby": flag == "baby",
                }
            )
    n = len(rows)

    def column(name: str) -> npt.NDArray[Any]:
        """One field of every product row as an array."""
        return np.array([r[name] for r in rows])

    department, prices, subgroup_index = column("dept"), column("price"), column("index")
    popularity = rng.lognormal(0.0, 1.0, n) * np.where(column("own_label"), 1.5, 1.0)
    staple_names = list(STAPLES)
    subgroup_names = [t[2] for t in taxonomy]
    staple_of = np.array(
        [
            staple_names.index(subgroup_names[s]) if subgroup_names[s] in STAPLES else -1
            for s in subgroup_index
        ]
    )

    # Launches during the period, each aimed at a lifestyle keen on new things in its department.
    days = calendar.days
    low_day, high_day = (
        (14, days - 28) if days > 84 else (days // 5, max(days // 5 + 1, 4 * days // 5))
    )
    launched = (rng.random(n) < 0.06) & (staple_of < 0)
    launch_day = np.where(launched, rng.integers(low_day, high_day, n), -1)
    past = ~launched & (rng.random(n) < 0.4)
    launch_date = np.where(
        launched, calendar.epoch_day + launch_day, calendar.epoch_day - rng.integers(30, 3650, n)
    )
    affinity = _NOVELTY[:, None] * DEPARTMENT_SHARES[:, department]
    cumulative = np.cumsum(affinity / affinity.sum(axis=0), axis=0)
    target = np.minimum((rng.random(n)[None, :] > cumulative).sum(axis=0), _NL - 1)
    target = np.where(launched, target, -1)

    # Each lifestyle's taste within a department: price level, organic, own label, baby goods.
    median = np.zeros(n)
    for s in range(len(taxonomy)):
        median[subgroup_index == s] = np.median(prices[subgroup_index == s])
    tilt = (
        np.exp(_PRICE_TILT[:, None] * np.log(prices / median)[None, :])
        * np.where(column("organic")[None, :], _ORGANIC_TILT[:, None], 1.0)
        * np.where(column("own_label")[None, :], _OWN_LABEL_TILT[:, None], 1.0)
    )
    tilt[1:, column("baby")] *= 0.15
    weight = popularity[None, :] * tilt

    regular_items = np.flatnonzero(~launched)
    life = np.repeat(np.arange(_NL), len(regular_items))
    items = np.tile(regular_items, _NL)
    regular = _Alias.build(life * _ND + department[items], items, weight[life, items], _NL * _ND)
    weeks = days // 7
    on_promo = (rng.random((weeks, n)) < 0.05) & ~launched[None, :]
    promo_pct = np.where(on_promo, rng.choice([10, 15, 20, 25, 30, 40], size=(weeks, n)), 0)
    promo_week, promo_item = np.nonzero(on_promo)
    promo = _Alias.build(
        promo_week * _ND + department[promo_item], promo_item, popularity[promo_item], weeks * _ND
    )
    staple_items = np.flatnonzero(staple_of >= 0)
    life = np.repeat(np.arange(_NL), len(staple_items))
    items = np.tile(staple_items, _NL)
    staples = _Alias.build(
        staple_of[items] * _NL + life, items, weight[life, items], len(STAPLES) * _NL
    )
    launch_items = np.flatnonzero(launched)
    launch_items = launch_items[np.lexsort((launch_day[launch_items], target[launch_items]))]
    by_day = launch_items[np.argsort(launch_day[launch_items], kind="stable")]

    sku = _digits("P", np.arange(1, n + 1), 5)
    table = pa.table(
        {
            "sku": sku,
            "name": pa.array(column("name").tolist(), _TEXT),
            "department": pa.array(DEPARTMENTS, _TEXT).take(pa.array(department)),
            "group": pa.array(column("group").tolist(), _TEXT),
            "subgroup": pa.array(column("subgroup").tolist(), _TEXT),
            "brand": pa.array(column("brand").tolist(), _TEXT),
            "price": _money(prices),
            "cost": _money(column("cost")),
            "launch_date": _dates(launch_date, ~(launched | past)),
            "attributes": pa.array([r["attributes"] for r in rows], _TEXT),
        },
        schema=PRODUCT_SCHEMA,
    )
    truth = pa.table(
        {
            "sku": sku,
            "staple": pa.array([staple_names[s] if s >= 0 else None for s in staple_of], _TEXT),
            "launch_lifestyle": pa.array(
                [LIFESTYLES[t] if t >= 0 else None for t in target], _TEXT
            ),
            "popularity": pa.array(popularity),
        },
        schema=PRODUCT_TRUTH_SCHEMA,
    )
    return _Catalogue(
        table=table,
        truth=truth,
        sku=sku,
        price=prices.astype(np.int64),
        weighed=column("weighed").astype(bool),
        regular=regular,
        promo=promo,
        promo_pct=promo_pct.astype(np.int64),
        staples=staples,
        launch_span=days,
        launch_key=target[launch_items] * days + launch_day[launch_items],
        launch_items=launch_items,
        launch_by_day=by_day,
        launch_days=launch_day[by_day],
    )


def _world(seed: int, stores: int, weeks: int, start: date) -> _World:
    """The fixed parts of a simulation, drawn from the seed's own stream."""
    rng = np.random.default_rng([seed, 1])
    calendar = _calendar(start, weeks)
    codes = [_STORES[i][0] if i < len(_STORES) else f"store-{i + 1:03d}" for i in range(stores)]
    popularity = rng.lognormal(0.0, 0.4, stores)
    profile = np.repeat(np.arange(3), _NL * 24)
    life = np.tile(np.repeat(np.arange(_NL), 24), 3)
    hour = np.tile(np.arange(24), 3 * _NL)
    return _World(
        seed=seed,
        calendar=calendar,
        stores=stores,
        store_codes=pa.array([*codes, "web", "app"], _TEXT),
        store_cities=[_STORES[i % len(_STORES)][2] for i in range(stores)],
        store_popularity=popularity / popularity.sum(),
        catalogue=_catalogue(rng, calendar),
        hours=_Alias.build(
            profile * _NL + life, hour, _HOURS[profile, hour] * _HOUR_TILT[life, hour], 3 * _NL
        ),
    )


def _store_table(world: _World) -> Any:
    """The physical stores, the web shop and the app."""
    names = [
        _STORES[i][1] if i < len(_STORES) else f"Puoti {world.store_cities[i]} {i + 1}"
        for i in range(world.stores)
    ]
    return pa.table(
        {
            "code": world.store_codes,
            "name": pa.array([*names, "Puoti web shop", "Puoti app"], _TEXT),
            "kind": pa.array(["store"] * world.stores + ["web", "app"], _TEXT),
            "city": pa.array([*world.store_cities, None, None], _TEXT),
        },
        schema=STORE_SCHEMA,
    )


def _people(
    rng: np.random.Generator,
    world: _World,
    first_member: int,
    members: int,
    first_shopper: int,
    shoppers: int,
) -> _People:
    """Draw members then shoppers: lifestyle, BG/NBD rate and drop-out, habits and identifiers."""
    count = members + shoppers
    member = np.arange(count) < members
    calendar = world.calendar
    lifestyle = rng.choice(_NL, size=count, p=np.array(LIFESTYLE_MIX))
    acquired = rng.random(count) < np.where(member, 0.4, 0.3)
    joined = np.searchsorted(calendar.cum, rng.random(count) * calendar.cum[-1], side="right") - 1
    shares = rng.standard_gamma(SHARE_CONCENTRATION * DEPARTMENT_SHARES[lifestyle])
    online_user = member & (rng.random(count) < _ONLINE[lifestyle])
    card = member & (rng.random(count) < 0.85)
    hunter = rng.random(count) < _DEAL_HUNTERS[lifestyle]
    return _People(
        count=count,
        members=members,
        number=np.where(member, first_member, first_shopper - members) + np.arange(count),
        lifestyle=lifestyle,
        rate=rng.gamma(RATE_SHAPE, RATE_SCALE, count),
        dropout=rng.beta(DROPOUT_A, DROPOUT_B, count),
        start_day=np.where(acquired, np.clip(joined, 0, calendar.days - 1), 0),
        acquired=acquired,
        shares=shares / shares.sum(axis=1, keepdims=True),
        basket=_BASKET_MEAN[lifestyle] * rng.gamma(6.0, 1 / 6.0, count),
        sensitivity=np.where(hunter, rng.beta(4.0, 4.0, count), rng.beta(1.2, 14.0, count)),
        home=rng.choice(world.stores, size=count, p=world.store_popularity),
        home_share=rng.beta(7.0, 2.0, count),
        online=np.where(online_user, rng.beta(2.0, 3.5, count), 0.0),
        app=rng.beta(1.5, 1.5, count),
        card=card,
        card_share=np.where(card, rng.beta(8.0, 1.8, count), 0.0),
        email=member & (online_user | (rng.random(count) < 0.75)),
        phone=member & (rng.random(count) < 0.65),
        tokens=np.where(member | (rng.random(count) < 0.75), 1 + (rng.random(count) < 0.3), 0),
        token_share=np.where(member, rng.beta(5.0, 3.0, count), rng.beta(6.0, 2.0, count)),
        wallet=rng.beta(8.0, 3.0, count),
    )


def _hours(rng: np.random.Generator, world: _World, day: Ints, web: Bools, lifestyle: Ints) -> Ints:
    """Second of the local day: opening hours for tills, any hour online, DST gaps skipped."""
    calendar = world.calendar
    profile = np.where(web, 2, calendar.weekday[day] >= 5)
    hour = world.hours.draw(profile * _NL + lifestyle, rng.random(len(day)))
    hour = hour + calendar.gap[day, hour]
    return hour * 3600 + rng.integers(0, 3600, len(day))


def _visits(rng: np.random.Generator, world: _World, people: _People) -> _Visits:
    """BG/NBD visits: Poisson at the person's rate, stopped after a geometric number of repeats."""
    calendar = world.calendar
    n = people.count
    begin = np.minimum(people.start_day + people.acquired, calendar.days)
    span = calendar.cum[-1] - calendar.cum[begin]
    poisson = rng.poisson(people.rate * span)
    limit = rng.geometric(people.dropout)
    kept = np.minimum(poisson, limit)
    owner = np.repeat(np.arange(n), kept)
    # The first `kept` of `poisson` sorted uniforms without drawing the rest: exponential
    # spacings over their total, the unseen spacings summed as one Gamma draw.
    running = np.concatenate(([0.0], np.cumsum(rng.standard_exponential(int(kept.sum())))))
    ends = np.cumsum(kept)
    before = running[ends - kept]
    scale = running[ends] - before + rng.standard_gamma(poisson - kept + 1.0)
    u = (running[1:] - before[owner]) / scale[owner]
    low = calendar.cum[begin[owner]]
    day = np.searchsorted(calendar.cum, low + u * (calendar.cum[-1] - low), side="right") - 1
    day = np.clip(day, begin[owner], calendar.days - 1)
    enrolled = np.flatnonzero(people.acquired)
    person = np.concatenate((enrolled, owner))
    day = np.concatenate((people.start_day[enrolled], day))
    enrolment = np.arange(len(person)) < len(enrolled)
    web = rng.random(len(person)) < people.online[person]
    second = _hours(rng, world, day, web, people.lifestyle[person])
    order = np.argsort((person * calendar.days + day) * SECONDS + second, kind="stable")
    person, day, second = person[order], day[order], second[order]
    web, enrolment = web[order], enrolment[order]

    visits = len(person)
    home = people.home[person]
    other = rng.choice(world.stores, size=visits, p=world.store_popularity)
    if world.stores > 1:
        clash = np.flatnonzero(other == home)
        other[clash] = (home[clash] + rng.integers(1, world.stores, len(clash))) % world.stores
    at_home = rng.random(visits) < people.home_share[person]
    app = rng.random(visits) < people.app[person]
    store = np.where(web, world.stores + app, np.where(at_home, home, other))
    shows = rng.random(visits) < people.card_share[person]
    card = people.card[person] & np.where(web, rng.random(visits) < 0.25, shows | enrolment)
    pays = ~web & ~card & (people.tokens[person] > 0)
    pays &= rng.random(visits) < people.token_share[person]
    second_card = (people.tokens[person] > 1) & (rng.random(visits) < 0.25)
    count = np.bincount(person, minlength=n)
    return _Visits(
        person=person,
        day=day,
        second=second,
        store=store,
        web=web,
        card=card,
        email=web & people.email[person],
        phone=web & people.phone[person] & (rng.random(visits) < 0.3),
        token=np.where(pays, second_card, -1),
        first=np.cumsum(count) - count,
        count=count,
        alive=limit > poisson,
    )


def _launched(
    rng: np.random.Generator, catalogue: _Catalogue, lifestyle: Ints, day: Ints
) -> tuple[Ints, Bools]:
    """A product launched by `day`, three times in four one aimed at the buyer's lifestyle."""
    rows = len(day)
    own_roll, u = rng.random(rows), rng.random(rows)
    if not len(catalogue.launch_items):
        return np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=bool)
    span = catalogue.launch_span
    low = np.searchsorted(catalogue.launch_key, lifestyle * span, side="left")
    own = np.searchsorted(catalogue.launch_key, lifestyle * span + day, side="right") - low
    available = np.searchsorted(catalogue.launch_days, day, side="right")
    last = len(catalogue.launch_items) - 1
    mine = catalogue.launch_items[np.minimum(low + (u * own).astype(np.int64), last)]
    anyone = catalogue.launch_by_day[np.minimum((u * available).astype(np.int64), last)]
    use_own = (own > 0) & (own_roll < 0.75)
    return np.where(use_own, mine, anyone), use_own | (available > 0)


def _basket(
    rng: np.random.Generator, world: _World, people: _People, visits: _Visits
) -> tuple[Ints, Ints]:
    """Each visit's drawn lines: department by the person's shares, then shelf, promotion or launch."""
    calendar, catalogue = world.calendar, world.catalogue
    mean = people.basket[visits.person] * np.where(visits.web, WEB_BASKET, 1.0)
    size = 1 + rng.negative_binomial(2.0, 2.0 / (2.0 + np.maximum(mean - 1.0, 0.01)))
    receipt = np.repeat(np.arange(len(size)), size)
    person = visits.person[receipt]
    day = visits.day[receipt]
    dept = _Segments.rows(people.shares).draw(person, rng.random(len(receipt)))
    # Out of season, a department's lines are dropped (never a receipt's first line).
    first = np.zeros(len(receipt), dtype=bool)
    first[np.cumsum(size) - size] = True
    keep = first | (rng.random(len(receipt)) < _SEASON[dept, calendar.month[day]])
    receipt, person, day, dept = receipt[keep], person[keep], day[keep], dept[keep]
    lifestyle = people.lifestyle[person]
    product = catalogue.regular.draw(lifestyle * _ND + dept, rng.random(len(receipt)))
    roll = rng.random(len(receipt))
    novelty = roll < _NOVELTY[lifestyle]
    chosen = np.flatnonzero(~novelty & (roll < _NOVELTY[lifestyle] + people.sensitivity[person]))
    segment = (day[chosen] // 7) * _ND + dept[chosen]
    stocked = catalogue.promo.size[segment] > 0
    chosen, segment = chosen[stocked], segment[stocked]
    product[chosen] = catalogue.promo.draw(segment, rng.random(len(chosen)))
    chosen = np.flatnonzero(novelty)
    launched, found = _launched(rng, catalogue, lifestyle[chosen], day[chosen])
    product[chosen[found]] = launched[found]
    return receipt, product


def _staples(rng: np.random.Generator, world: _World, people: _People, visits: _Visits) -> _Staples:
    """Staples bought at the first visit after each interval has passed, with us at the wallet share."""
    names = list(STAPLES)
    chance = np.array([STAPLES[s][1] for s in names]).T
    owner, staple = np.nonzero(rng.random((people.count, len(names))) < chance[people.lifestyle])
    lifestyle = people.lifestyle[owner]
    sku = world.catalogue.staples.draw(staple * _NL + lifestyle, rng.random(len(owner)))
    need = np.array([STAPLES[s][0] for s in names])[staple] * _HOUSEHOLD[lifestyle]
    need = need * rng.lognormal(0.0, 0.25, len(owner))
    # Who shops seldom buys for longer: the cycle is at least 1.2 times the mean visit gap.
    gap = 7.0 / np.maximum(people.rate[owner], 0.01)
    interval = np.maximum(need, 1.2 * gap * rng.lognormal(0.0, 0.1, len(owner)))
    pack = np.clip(np.round(interval / need), 1, 6).astype(np.int64)
    # When the person last bought it before we first see them.
    anchor = people.start_day[owner] - rng.random(len(owner)) * interval
    seen = visits.count[owner]
    pair = np.repeat(np.arange(len(owner)), seen)
    within = np.arange(len(pair)) - np.repeat(np.cumsum(seen) - seen, seen)
    visit = visits.first[owner][pair] + within
    moment = visits.day[visit] + visits.second[visit] / SECONDS
    cycle = np.floor((moment - anchor[pair]) / interval[pair]).astype(np.int64)
    previous = np.concatenate(([0], cycle[:-1]))
    previous[within == 0] = 0
    due = cycle - previous
    buy = (due > 0) & (rng.random(len(pair)) < people.wallet[owner[pair]])
    return _Staples(
        owner=owner,
        staple=staple,
        sku=sku,
        interval=interval,
        receipt=visit[buy],
        product=sku[pair[buy]],
        units=pack[pair[buy]] * np.minimum(due[buy], 2),
    )


def _amounts(
    rng: np.random.Generator, world: _World, lifestyle: Ints, day: Ints, product: Ints, units: Ints
) -> tuple[Ints, Ints, Ints, Ints]:
    """Quantity in thousandths, unit price, discount and line total in cents, all exact integers."""
    catalogue = world.catalogue
    rows = len(product)
    # Geometric units by inverse transform; kilograms only where the product is weighed.
    scale = 1.0 / np.log(1.0 - _UNITS_P)
    drawn = 1 + np.minimum(np.log(1.0 - rng.random(rows)) * scale[lifestyle], 7).astype(np.int64)
    milli = np.where(units > 0, units, drawn) * 1000
    weighed = np.flatnonzero(catalogue.weighed[product])
    grams = np.round(rng.lognormal(np.log(0.8), 0.45, len(weighed)) * 1000)
    milli[weighed] = np.clip(grams, 50, 4000).astype(np.int64)
    price = catalogue.price[product]
    # No half cents, so that every rounding convention gives the same line total.
    milli = milli + ((milli * price) % 1000 == 500)
    gross = (milli * price + 500) // 1000
    discount = (gross * catalogue.promo_pct[day // 7, product] + 50) // 100
    return milli, price, discount, gross - discount


def _timestamps(calendar: _Calendar, day: Ints, second: Ints) -> Any:
    """ISO 8601 local times with the Helsinki offset of that moment: 2025-03-30T04:15:00+03:00."""
    matrix = np.empty((len(day), 25), dtype=np.uint8)
    matrix[:] = np.frombuffer(b"0000-00-00T00:00:00+00:00", dtype=np.uint8)
    hour = second // 3600
    _put_digits(matrix, 0, calendar.ymd[day, 0], 4)
    _put_digits(matrix, 5, calendar.ymd[day, 1], 2)
    _put_digits(matrix, 8, calendar.ymd[day, 2], 2)
    _put_digits(matrix, 11, hour, 2)
    _put_digits(matrix, 14, (second // 60) % 60, 2)
    _put_digits(matrix, 17, second % 60, 2)
    offset = calendar.offset[day, hour]
    matrix[:, 19] = np.where(offset < 0, ord("-"), ord("+"))
    _put_digits(matrix, 20, np.abs(offset) // 60, 2)
    _put_digits(matrix, 23, np.abs(offset) % 60, 2)
    return _strings(matrix)


def _identifiers(rng: np.random.Generator, people: _People) -> _Identifiers:
    """Finnish names; unique emails, mobile numbers and card numbers made from the member number."""
    n = people.members
    number = people.number[:n].astype(np.int64)
    given, family = rng.integers(0, len(GIVEN), n), rng.integers(0, len(FAMILY), n)
    email = pc.binary_join_element_wise(
        pa.array([_ascii(g) for g in GIVEN], _TEXT).take(pa.array(given)),
        ".",
        pa.array([_ascii(f) for f in FAMILY], _TEXT).take(pa.array(family)),
        pc.cast(pa.array(number + 1), _TEXT),
        "@",
        pa.array(_DOMAINS, _TEXT).take(pa.array(rng.integers(0, len(_DOMAINS), n))),
        "",
    )
    # Bijections of the member number (multipliers prime to the modulus): never two alike.
    mobile = (number * 7919 + 1_234_567) % 40_000_000
    mobile = _PHONE_DIGIT[mobile // 10_000_000] * 10_000_000 + mobile % 10_000_000
    return _Identifiers(
        given=pa.array(GIVEN, _TEXT).take(pa.array(given)),
        family=pa.array(FAMILY, _TEXT).take(pa.array(family)),
        email=email,
        phone=_digits("+3584", mobile, 8),
        card=_digits("6012", (number * 982_451_653 + 77_777_777) % 10**12, 12),
    )


def _customers(
    rng: np.random.Generator, world: _World, people: _People, refs: Any, ids: _Identifiers
) -> Any:
    """The members' register rows: names, language, birthday, joining date, identifiers, address."""
    calendar = world.calendar
    n = people.members
    lifestyle = people.lifestyle[:n]
    age = rng.uniform(_AGE[lifestyle, 0], _AGE[lifestyle, 1])
    joined = np.where(
        people.acquired[:n],
        calendar.epoch_day + people.start_day[:n],
        calendar.epoch_day - rng.integers(30, 8 * 365, n),
    )
    city_names = [city for _, city in CITIES]
    home_city = np.array([city_names.index(c) for c in world.store_cities])[people.home[:n]]
    city = np.where(rng.random(n) < 0.9, home_city, rng.integers(0, len(CITIES), n))
    postal_area = np.array([int(code[:2]) for code, _ in CITIES])[city]
    street = pc.binary_join_element_wise(
        pa.array(STREETS, _TEXT).take(pa.array(rng.integers(0, len(STREETS), n))),
        pc.cast(pa.array(rng.integers(1, 120, n)), _TEXT),
        " ",
    )
    address = rng.random(n) < 0.75
    return pa.table(
        {
            "customer_ref": refs.slice(0, n),
            "name": pc.binary_join_element_wise(ids.given, ids.family, " "),
            "given_name": ids.given,
            "family_name": ids.family,
            "language": pa.array(["fi", "sv", "en"], _TEXT).take(
                pa.array(rng.choice(3, size=n, p=[0.85, 0.1, 0.05]))
            ),
            "birthday": _dates(
                calendar.epoch_day - (age * 365.25).astype(np.int64), rng.random(n) < 0.3
            ),
            "relationship_start": _dates(joined),
            "email": _unless(people.email[:n], ids.email),
            "phone": _unless(people.phone[:n], ids.phone),
            "card": _unless(people.card[:n], ids.card),
            "street": _unless(address, street),
            "postal_code": _unless(
                address, _digits("", postal_area * 1000 + rng.integers(1, 100, n) * 10, 5)
            ),
            "city": _unless(address, pa.array(city_names, _TEXT).take(pa.array(city))),
            **_consents(world.seed, people.number[:n]),
        },
        schema=CUSTOMER_SCHEMA,
    )


def _consents(seed: int, number: Ints) -> dict[str, Any]:
    """What members told at enrolment, as a loyalty programme records it: most allow profiling;
    most of those also personal offers (on every channel, or by email only); marketing by email
    or email and text message for some; a few refuse. Drawn per member number from a stream of
    their own, so that the receipts of a seed stay as they were."""
    u = np.random.default_rng([seed, 0xC0, int(number[0]) if len(number) else 0]).random(
        (3, len(number))
    )
    options = pa.array([None, "all", "email", "email sms", DENIED], _TEXT)
    profiling = np.select([u[0] < 0.85, u[0] < 0.9], [1, 4], 0)
    offers = np.where(
        profiling == 1, np.select([u[1] < 0.7, u[1] < 0.85, u[1] < 0.9], [1, 2, 4], 0), 0
    )
    marketing = np.select([u[2] < 0.4, u[2] < 0.55, u[2] < 0.65], [2, 3, 4], 0)
    return {
        f"consent_{name}": options.take(pa.array(choice))
        for name, choice in (
            ("profiling", profiling),
            ("personalised_offers", offers),
            ("marketing", marketing),
        )
    }


def _truth(world: _World, people: _People, visits: _Visits, refs: Any) -> Any:
    """One row per member: the hidden drivers that later analyses should recover."""
    n = people.members
    columns: dict[str, Any] = {
        "customer_ref": refs.slice(0, n),
        "lifestyle": pa.array(LIFESTYLES, _TEXT).take(pa.array(people.lifestyle[:n])),
        "rate": pa.array(people.rate[:n]),
        "dropout_p": pa.array(people.dropout[:n]),
        "home_store": world.store_codes.take(pa.array(people.home[:n])),
        "alive_at_end": pa.array(visits.alive[:n]),
        "purchases": pa.array(visits.count[:n].astype(np.int32)),
        "price_sensitivity": pa.array(people.sensitivity[:n]),
        "home_share": pa.array(people.home_share[:n]),
        "online_share": pa.array(people.online[:n]),
        "card_share": pa.array(people.card_share[:n]),
        "wallet_share": pa.array(people.wallet[:n]),
        "basket_mean": pa.array(people.basket[:n]),
    }
    for dept, name in enumerate(SHARE_COLUMNS):
        columns[name] = pa.array(people.shares[:n, dept])
    return pa.table(columns, schema=TRUTH_SCHEMA)


def _chunk(
    world: _World,
    index: int,
    first_member: int,
    members: int,
    first_shopper: int,
    shoppers: int,
    numbered: tuple[int, int],
) -> _Chunk:
    """Simulate one chunk of members (and their share of non-members) into its tables."""
    rng = np.random.default_rng([world.seed, 2, index])
    calendar, catalogue = world.calendar, world.catalogue
    people = _people(rng, world, first_member, members, first_shopper, shoppers)
    visits = _visits(rng, world, people)
    drawn_receipt, drawn_product = _basket(rng, world, people, visits)
    staples = _staples(rng, world, people, visits)
    receipt = np.concatenate((drawn_receipt, staples.receipt))
    order = np.argsort(receipt, kind="stable")
    receipt = receipt[order]
    product = np.concatenate((drawn_product, staples.product))[order]
    units = np.concatenate((np.zeros(len(drawn_receipt), dtype=np.int64), staples.units))[order]
    milli, price, discount, total = _amounts(
        rng, world, people.lifestyle[visits.person[receipt]], visits.day[receipt], product, units
    )

    # Returns: half the undiscounted lines of a few receipts, brought back days later together.
    eligible = discount == 0
    chance = RETURN_SHARE * len(receipt) / max(int(eligible.sum()), 1) / RETURNED_PER_RECEIPT
    picked = rng.random(len(visits.person)) < chance
    returned = np.flatnonzero(
        eligible & picked[receipt] & (rng.random(len(receipt)) < RETURNED_PER_RECEIPT)
    )
    original, back = np.unique(receipt[returned], return_inverse=True)
    return_day = visits.day[original] + rng.geometric(0.25, len(original))
    for _ in range(3):
        closed = ~visits.web[original] & (return_day < calendar.days)
        closed &= ~calendar.open[np.minimum(return_day, calendar.days - 1)]
        return_day = return_day + closed
    valid = return_day < calendar.days
    kept_line = valid[back]
    returned, back = returned[kept_line], (np.cumsum(valid) - 1)[back[kept_line]]
    original, return_day = original[valid], return_day[valid]
    return_second = _hours(
        rng, world, return_day, visits.web[original], people.lifestyle[visits.person[original]]
    )

    # Every receipt: the sales, then the returns (each a copy of its original's header).
    sales = len(visits.person)
    receipts = sales + len(original)

    def both(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A per-sale array extended to the returns, which copy their original's value."""
        return np.concatenate((values, values[original]))

    r_person, r_web, r_token = both(visits.person), both(visits.web), both(visits.token)
    r_card, r_email, r_phone = both(visits.card), both(visits.email), both(visits.phone)
    r_day = np.concatenate((visits.day, return_day))
    r_second = np.concatenate((visits.second, return_second))
    r_origin = np.concatenate((np.full(sales, -1), original))

    # Receipts in time order, numbered per source; each one's lines follow, contiguous.
    by_time = np.argsort(r_day * SECONDS + r_second, kind="stable")
    source = r_web.astype(np.int64)
    number = np.empty(receipts, dtype=np.int64)
    counted = []
    for s in (0, 1):
        mine = by_time[source[by_time] == s]
        number[mine] = numbered[s] + 1 + np.arange(len(mine))
        counted.append(len(mine))
    receipt_ids = _digits("", number, 9, letters=_RECEIPT_LETTER[source])
    line_receipt = np.concatenate((receipt, sales + back))
    count = np.bincount(line_receipt, minlength=receipts)
    ordered = count[by_time]
    offset = np.cumsum(ordered) - ordered
    lines = len(line_receipt)
    within = np.arange(lines) - np.repeat(offset, ordered)
    perm = np.repeat((np.cumsum(count) - count)[by_time], ordered) + within
    line_index = _index(line_receipt[perm])

    n = people.members
    refs = _digits(
        "", people.number + 1, 7, letters=np.where(np.arange(people.count) < n, ord("C"), ord("N"))
    )
    ids = _identifiers(rng, people)
    member = pa.array(np.minimum(r_person, max(n - 1, 0)))
    tokens = _tokens(rng, 2 * people.count).take(pa.array(r_person * 2 + np.maximum(r_token, 0)))
    # Each receipt-level column is a dictionary of per-receipt values under one shared index.
    header = {
        "source": pa.array(SOURCES, _TEXT).take(pa.array(source)),
        "receipt_id": receipt_ids,
        "purchased_at": _timestamps(calendar, r_day, r_second),
        "store": world.store_codes.take(pa.array(both(visits.store))),
        "card": _unless(r_card, ids.card.take(member)),
        "email": _unless(r_email, ids.email.take(member)),
        "phone": _unless(r_phone, ids.phone.take(member)),
        "payment_token": _unless(r_token >= 0, tokens),
        "currency": pa.repeat(pa.scalar("EUR", _TEXT), receipts),
    }
    table = pa.table(
        {
            **{name: _keyed(line_index, values) for name, values in header.items()},
            "line_no": pa.array((within + 1).astype(np.int32)),
            "sku": _keyed(
                _index(np.concatenate((product, product[returned]))[perm]), catalogue.sku
            ),
            "quantity": pa.array(np.concatenate((milli, -milli[returned]))[perm] / 1000.0),
            "unit_price": _money(np.concatenate((price, price[returned]))[perm]),
            "discount": _money(np.concatenate((discount, np.zeros(len(returned), np.int64)))[perm]),
            "line_total": _money(np.concatenate((total, -total[returned]))[perm]),
            "returns_receipt_id": _keyed(
                line_index,
                _unless(r_origin >= 0, receipt_ids.take(pa.array(np.maximum(r_origin, 0)))),
            ),
        },
        schema=RECEIPT_SCHEMA,
    )
    time_index = _index(by_time)
    receipt_truth = pa.table(
        {
            "source": _keyed(time_index, header["source"]),
            "receipt_id": _keyed(time_index, receipt_ids),
            "customer_ref": _keyed(time_index, refs.take(pa.array(r_person))),
        },
        schema=RECEIPT_TRUTH_SCHEMA,
    )
    staple_table = pa.table(
        {
            "customer_ref": _keyed(_index(staples.owner), refs),
            "staple": _keyed(_index(staples.staple), pa.array(list(STAPLES), _TEXT)),
            "sku": _keyed(_index(staples.sku), catalogue.sku),
            "interval_days": pa.array(staples.interval),
        },
        schema=STAPLE_SCHEMA,
    )
    return _Chunk(
        customers=_customers(rng, world, people, refs, ids),
        receipts=table,
        truth=_truth(world, people, visits, refs),
        staples=staple_table,
        receipt_truth=receipt_truth,
        till_receipts=counted[0],
        web_receipts=counted[1],
        lines=lines,
        returns=len(returned),
        return_receipts=len(original),
        anonymous=int((~r_web & ~r_card & (r_token < 0)).sum()),
    )


def _json_quoted(text: Any) -> Any:
    """JSON string literals for a string array (nulls stay null)."""
    if pc.any(pc.match_substring_regex(text, r'["\\\x00-\x1f]')).as_py():
        text = pc.replace_substring(text, "\\", "\\\\")
        text = pc.replace_substring(text, '"', '\\"')
        for code in range(32):
            text = pc.replace_substring(text, chr(code), f"\\u{code:04x}")
    return pc.binary_join_element_wise('"', text, '"', "")


def _csv_quoted(text: Any) -> Any:
    """CSV fields for a string array: quoted (quotes doubled) only where a value needs it."""
    special = pc.match_substring_regex(text, r'[,"\r\n]')
    if not pc.any(special).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(special, quoted, text)


def _fields(column: Any, fmt: str, key: str) -> Any:
    """Every value of `column` as a CSV field or a JSON `"key":value` (null: empty or null)."""
    kind = column.type
    text = pc.cast(column, _TEXT)
    numeric = pa.types.is_decimal(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if fmt == "csv":
        return pc.fill_null(text if numeric else _csv_quoted(text), "")
    value = text if numeric else _json_quoted(text)
    return pc.fill_null(pc.binary_join_element_wise(key, value, ""), key + "null")


def _shares_index(column: Any, address: int) -> bool:
    """Whether `column` is a dictionary column under the index buffer at `address`."""
    return bool(
        pa.types.is_dictionary(column.type)
        and column.indices.null_count == 0
        and column.indices.buffers()[1].address == address
    )


def _text_lines(table: Any, fmt: str, rows: int = 250_000) -> Iterator[Any]:
    """The table's rows as CSV or JSON lines, yielded a slice of `rows` at a time.

    Neighbouring dictionary columns under one shared index (a receipt's header) are rendered
    once per dictionary entry and then picked per row: the work is per receipt, not per line.
    """
    separator = "," if fmt == "csv" else ""
    names = table.column_names
    # A single chunk is used as it is: combining would copy it, and the shared index with it.
    columns = [
        column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        for column in table.columns
    ]
    pieces: list[tuple[Any, Any]] = []
    position = 0
    while position < len(names):
        column = columns[position]
        if pa.types.is_dictionary(column.type) and column.indices.null_count:
            column = column.dictionary_decode()
        width = 1
        if pa.types.is_dictionary(column.type):
            address = column.indices.buffers()[1].address
            while position + width < len(names) and _shares_index(
                columns[position + width], address
            ):
                width += 1
        rendered = [
            _fields(
                c.dictionary if pa.types.is_dictionary(c.type) else c,
                fmt,
                ("{" if position + k == 0 else ",") + json.dumps(names[position + k]) + ":",
            )
            for k, c in enumerate([column, *columns[position + 1 : position + width]])
        ]
        joined = rendered[0] if width == 1 else pc.binary_join_element_wise(*rendered, separator)
        if position + width == len(names):
            joined = pc.binary_join_element_wise(joined, "\n" if fmt == "csv" else "}\n", "")
        indices = column.indices if pa.types.is_dictionary(column.type) else None
        pieces.append((joined, indices))
        position += width
    for start in range(0, table.num_rows, rows):
        parts = [
            text.take(indices.slice(start, rows))
            if indices is not None
            else text.slice(start, rows)
            for text, indices in pieces
        ]
        yield parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, separator)


def _parquet_ready(table: Any) -> Any:
    """Plain strings for Parquet, which builds its own dictionaries from the values.

    Handed Arrow dictionaries, the writer's choice of encoding depends on more than the data,
    and the same rows would not always give the same bytes.
    """
    columns = [
        column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
        for column in (c.combine_chunks() for c in table.columns)
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


class _Sink:
    """One output table, appended chunk by chunk as CSV, JSON lines or Parquet."""

    def __init__(self, path: Path, schema: Any, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self._writer: Any = None
        self._file: Any = None
        if fmt == "parquet":
            plain = pa.schema(
                [
                    (f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                    for f in schema
                ]
            )
            self._writer = pq.ParquetWriter(
                str(path), plain, compression="zstd", store_schema=False
            )
        else:
            self._file = path.open("wb")
            if fmt == "csv":
                self._file.write((",".join(schema.names) + "\n").encode())

    def write(self, table: Any) -> None:
        """Append the rows of `table`."""
        if self.fmt == "parquet":
            self._writer.write_table(_parquet_ready(table))
            return
        for text in _text_lines(table, self.fmt):
            offsets = np.frombuffer(
                text.buffers()[1], dtype=np.int32, count=len(text) + 1, offset=text.offset * 4
            )
            self._file.write(memoryview(text.buffers()[2])[offsets[0] : offsets[-1]])

    def close(self) -> None:
        """Finish the file (Parquet writes its footer here)."""
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()


class _Background:
    """Writes tables on a second thread, so the next chunk is simulated while this one is written."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[_Sink, Any] | None] = queue.Queue(maxsize=5)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="simulate-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Write queued tables in order until the stop sign; keep the first error."""
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    item[0].write(item[1])
                except BaseException as exc:  # handed over to the simulating thread
                    self._error = exc

    def put(self, sink: _Sink, table: Any) -> None:
        """Queue `table` for `sink`; blocks while a chunk is still waiting, so memory stays flat."""
        if self._error is not None:
            raise self._error
        self._queue.put((sink, table))

    def finish(self) -> BaseException | None:
        """Write what is queued and stop; the writer's error, if any."""
        self._queue.put(None)
        self._thread.join()
        return self._error


def simulate(
    customers: int,
    stores: int,
    weeks: int,
    seed: int,
    out: Path,
    start: date = date(2025, 1, 6),
    fmt: str = "csv",
    progress: Callable[[int], None] | None = None,
    *,
    chunk_size: int = CHUNK,
) -> SimulationSummary:
    """Write a simulated chain's stores, products, members and receipts, and the truth, to `out`.

    The same arguments give byte-identical files; memory grows with `chunk_size`, not with
    `customers`. `progress` is called with the number of members done after every chunk.
    """
    if customers < 1 or stores < 1 or weeks < 1 or chunk_size < 1:
        raise ValueError("customers, stores, weeks and chunk_size must be at least 1")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    out.mkdir(parents=True, exist_ok=True)
    world = _world(seed, stores, weeks, start)
    truth = Truth(
        customers=out / "truth.parquet",
        staples=out / "truth_staples.parquet",
        products=out / "truth_products.parquet",
        receipts=out / "truth_receipts.parquet",
    )
    summary = SimulationSummary(
        truth=truth, stores=stores + 2, products=world.catalogue.table.num_rows
    )
    for name, table in (("stores", _store_table(world)), ("products", world.catalogue.table)):
        sink = _Sink(out / f"{name}.{fmt}", table.schema, fmt)
        sink.write(table)
        sink.close()
        summary.files.append(sink.path)
    pq.write_table(world.catalogue.truth, truth.products, compression="zstd")
    sinks = {
        "customers": _Sink(out / f"customers.{fmt}", CUSTOMER_SCHEMA, fmt),
        "receipts": _Sink(out / f"receipts.{fmt}", RECEIPT_SCHEMA, fmt),
        "truth": _Sink(truth.customers, TRUTH_SCHEMA, "parquet"),
        "staples": _Sink(truth.staples, STAPLE_SCHEMA, "parquet"),
        "receipt_truth": _Sink(truth.receipts, RECEIPT_TRUTH_SCHEMA, "parquet"),
    }
    background = _Background()
    try:
        for index, first in enumerate(range(0, customers, chunk_size)):
            members = min(chunk_size, customers - first)
            shoppers = round(members * SHOPPERS_PER_MEMBER)
            part = _chunk(
                world,
                index,
                first,
                members,
                summary.shoppers,
                shoppers,
                (summary.till_receipts, summary.web_receipts),
            )
            for name, sink in sinks.items():
                background.put(sink, getattr(part, name))
            summary.customers += members
            summary.shoppers += shoppers
            summary.till_receipts += part.till_receipts
            summary.web_receipts += part.web_receipts
            summary.lines += part.lines
            summary.returns += part.returns
            summary.return_receipts += part.return_receipts
            summary.anonymous_receipts += part.anonymous
            if progress is not None:
                progress(members)
    finally:
        error = background.finish()
        for sink in sinks.values():
            sink.close()
    if error is not None:
        raise error
    summary.receipts = summary.till_receipts + summary.web_receipts
    summary.files += [sink.path for sink in sinks.values()]
    summary.files.insert(2, truth.products)
    return summary
