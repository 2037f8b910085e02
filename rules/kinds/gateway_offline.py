"""``gateway_offline``: a gateway that says it is offline, or all of whose stations are silent; one
alert for the gateway instead of one per station (correlation in ``Engine.tick``)."""

from rules.kinds.base import Kind, compare_limit

KIND = Kind("gateway_offline", needs=(), measure=None, judge=compare_limit, resolve_cites_value=False)
