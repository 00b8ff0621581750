"""Personal offers: recommenders, coupon campaigns, till offers and chosen offers.

The batch (`oppiva offers train`) scores products per customer and stores the best as
candidates (`models.OfferCandidate`); campaigns turn candidates into coupons within consent,
relevance rules, budgets and limits; the till and the customer's own choice read the same
candidates. See docs/offers.md.
"""
