-- Keyset page of a zone's chests in id order. Unopened chests come from `chests`, opened ones
-- from the ledger; both walks are primary-key index scans merged in order.
-- $1 zone id, $2 after this chest id, $3 page size, $4 include unopened, $5 include opened.
SELECT chest_id AS "chest_id!", opened_by, opened_at
FROM (
    (SELECT ch.chest_id, NULL::text AS opened_by, NULL::timestamptz AS opened_at
     FROM chests ch
     WHERE $4 AND ch.zone_id = $1 AND ch.chest_id > $2
     ORDER BY ch.chest_id LIMIT $3)
    UNION ALL
    (SELECT c.chest_id, c.player, c.opened_at
     FROM claims c
     WHERE $5 AND c.zone_id = $1 AND c.chest_id > $2
     ORDER BY c.chest_id LIMIT $3)
) AS page
ORDER BY chest_id
LIMIT $3
