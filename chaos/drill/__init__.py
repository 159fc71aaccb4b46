"""Recovery drills: the report, the timeline plot and the live view of a `dstream drill` run.

Everything here is written against the history (chaos.history) and the checker's verdict
(chaos.checker) only, so it works on a saved run as well as on a live one.
"""
