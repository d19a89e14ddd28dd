"""Claims checked on the records *we* measured, one module per notebook (:mod:`.background` for 00 ...
:mod:`.combinations` for 06), all returning a :class:`~gansurvey.claims.verdict.Check` decided by one rule
(:mod:`.rule`; best-of choices through :mod:`.selection`). :mod:`gansurvey.survey.findings` checks claims on the
literature's numbers instead."""
