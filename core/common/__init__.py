"""The vocabulary and small helpers every layer shares; imports nothing else of ``core``.

``types`` (Part, Inspection, Decision, Verdict, InspectedPart), ``fileio`` (atomic writes, hashes),
``paths`` (the data directory), ``progress`` (progress bars), ``metrics`` (miss and false-reject
rates, thresholds, AUC), ``lazy`` (lazy re-exports for package faces), ``errors`` (``UserError``: what the user can fix,
as opposed to a bug).
"""
