-- How many ledger rows (of every zone) a resume would walk: after ($1, $2, $3) and up to
-- ($4, $5, $6), counting at most $7 (the replay window). Read before anything is sent, so a
-- replay is all or nothing. Walks the tail index only.
SELECT count(*) AS "scanned!"
FROM (
    SELECT 1
    FROM claims c
    WHERE (c.xid, c.zone_id, c.chest_id) > ($1, $2, $3)
      AND (c.xid, c.zone_id, c.chest_id) <= ($4, $5, $6)
    ORDER BY c.xid, c.zone_id, c.chest_id
    LIMIT $7
) AS w
