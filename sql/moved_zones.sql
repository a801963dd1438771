-- Old copies of zones that moved away more than $1 ms ago: what `trove zones cleanup` deletes.
SELECT id FROM zones WHERE state = 'moved' AND moved_at < now() - $1::bigint * interval '1 millisecond'
