"""Signed CMS webhooks, the pure part: signature schemes (`signatures`), a source's settings (`settings`) and
the payload -> publish message mapping (`mapping`). What the intake function does with the network (secrets,
the replay record, the queue) is `cdnpurge.runtime.webhook`."""
