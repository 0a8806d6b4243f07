"""The router: decides what each client or control-plane action becomes, per room, in order.

Owns: per-room decisions (room config and limits, the room message rate, message ids,
redelivery de-duplication, ordering), calling the reviewer, and publishing the final frames to
the room's channel (and errors to the one gateway that holds the requester).

Must not: touch sockets, or keep state another router needs — a shard's rooms move to another
router when this one dies, and only the Store is shared.

Read in this order: ``decide`` (pure per-room rules) → ``rooms`` (room config cache) →
``shards`` (which router owns which shard) → ``worker`` (the consume/decide/publish/ack loop).
"""
