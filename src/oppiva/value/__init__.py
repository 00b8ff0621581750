"""Customer lifetime value: probability models of repeat buying and spend.

- `BGNBD` (Fader, Hardie & Lee 2005) and `ParetoNBD` (Schmittlein, Morrison & Colombo 1987):
  how often customers buy and when they quietly stop, from (x, t_x, T) per customer;
- `GammaGamma` (Fader, Hardie & Lee 2005, "RFM and CLV"): how much they spend per purchase;
- `BGBB` (Fader, Hardie & Shang 2010): the same for discrete occasions (x, t_x, n).

Each model has a log-likelihood with its analytic gradient, a maximum-likelihood `fitted`
constructor working on the unique rows of the data (cost independent of the number of
customers), standard errors and confidence intervals (`model.fit`), and predictions
vectorised over any number of customers: P(alive), expected purchases, expected spend. `clv`
turns them into customer lifetime value, `data` turns transaction rows into the statistics,
and `checking` compares a model with a holdout period. See docs/value.md.
"""

from oppiva.value.bgbb import BGBB
from oppiva.value.bgnbd import BGNBD
from oppiva.value.checking import Tracking, frequency_table, tracking, tracking_svg
from oppiva.value.clv import customer_lifetime_value, new_customer_value
from oppiva.value.data import Holdout, Summary, Transactions, calibration_holdout, cdnow, summarise
from oppiva.value.fitting import Fit, compress
from oppiva.value.gamma_gamma import GammaGamma
from oppiva.value.pareto import ParetoNBD

__all__ = [
    "BGBB",
    "BGNBD",
    "Fit",
    "GammaGamma",
    "Holdout",
    "ParetoNBD",
    "Summary",
    "Tracking",
    "Transactions",
    "calibration_holdout",
    "cdnow",
    "compress",
    "customer_lifetime_value",
    "frequency_table",
    "new_customer_value",
    "summarise",
    "tracking",
    "tracking_svg",
]
