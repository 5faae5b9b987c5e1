"""The webhook intake: what `functions/webhook/app.py` runs. `http` reads API Gateway's request and writes its
answer; `stores` holds the delivery record (DynamoDB) and the purge queue (SQS) behind small interfaces;
`intake` verifies, maps, remembers and enqueues. It never purges: the purge function does, from the queue."""
