"""Message review (spec §8): asks a room's ``messageReviewHandler`` about each SendMessage.

Owns: invoking handlers (HTTP endpoints, built-in ``parley:`` handlers, Lambda ARNs mapped by
``PARLEY_REVIEW_LAMBDA_MAP``) within the fixed 200 ms budget, validating their answers, the
room's ``fallbackResult`` when anything goes wrong, the ``InvocationErrors`` /
``ResponseValidationErrors`` / ``parley_review_seconds`` metrics, and the router↔reviewer
transport over the Bus (``RemoteReviewer`` on the router side, ``ReviewerServer`` in
``parley reviewer`` and ``parley dev``). Rooms' http(s) handlers are called only at addresses
``shared.address_policy`` allows, judged after DNS (against server-side request forgery).

Must not: decide delivery (a review only returns a :class:`shared.protocol.review.Verdict`; the router
applies it, in order, and publishes), read or write the Store, touch sockets of chat clients,
or block chat — every path ends in a verdict, at worst the fallback after the timeout.

Modules: ``protocol`` (pure: IVS request/response JSON and its validation), ``builtin`` (pure:
``parley:`` handlers), ``webhook`` (HTTP I/O), ``service`` (invoke + validate + fallback +
metrics), ``remote`` (router side), ``server`` (reviewer side), ``config`` (env).
"""
