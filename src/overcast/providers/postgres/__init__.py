"""PostgreSQL providers (``postgresql://HOST:PORT/DBNAME``): a key-value store on a JSONB
table, and queues and topics on ``FOR UPDATE SKIP LOCKED``. Install with
``pip install 'overcast[postgres]'`` (psycopg 3 and psycopg-pool).
"""
