"""The steps of :func:`vascalc.analyse.analyse`, each a function between small typed records:
the region layout (:mod:`.layout`), the contrast plan (:mod:`.contrast`), the calcium found
and scored (:mod:`.calcium`), the per-region breakdown (:mod:`.breakdown`) and the protocol
gate (:mod:`.protocol`). Pure: nothing is read or written; the config's choices are applied
here, the definitions live in :mod:`vascalc.core`."""
