-- One page of the shard's ledger after tail position ($2, $3, $4), $5 rows of every zone in
-- tail order (the tail index), returning the zone $1's claims among them and the page's last
-- position (`last_*`) where the next page starts. No row: nothing left. What a move's later
-- passes copy: the claims committed since an earlier pass began.
WITH w AS (
    SELECT c.xid, c.zone_id, c.chest_id, c.claim_id, c.player, c.seed_epoch, c.loot_table_id,
           c.loot, c.opened_at, c.idempotency_key, c.nonce, c.client_seed, c.authorised_by
    FROM claims c
    WHERE (c.xid, c.zone_id, c.chest_id) > ($2, $3, $4)
    ORDER BY c.xid, c.zone_id, c.chest_id
    LIMIT $5
),
last AS (
    SELECT w.xid, w.zone_id, w.chest_id FROM w
    ORDER BY w.xid DESC, w.zone_id DESC, w.chest_id DESC
    LIMIT 1
)
SELECT l.xid AS "last_xid!", l.zone_id AS "last_zone_id!", l.chest_id AS "last_chest_id!",
       e.chest_id AS "chest_id?", e.claim_id AS "claim_id?", e.player AS "player?",
       e.seed_epoch AS "seed_epoch?", e.loot_table_id AS "loot_table_id?", e.loot AS "loot?",
       e.opened_at AS "opened_at?", e.idempotency_key, e.nonce, e.client_seed, e.authorised_by
FROM last l
LEFT JOIN LATERAL (SELECT * FROM w WHERE w.zone_id = $1) AS e ON true
