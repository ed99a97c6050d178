"""The whole AutoCoA recipe on one world: stages, evaluation of the paper's Table 1 rows, reports."""
