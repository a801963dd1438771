-- Applies a follower's batch only if the boards are where the batch starts (compare-and-set)
-- and no rebuild holds the lock (its swap would not see boards written meanwhile).
-- KEYS[1] position key, KEYS[2] rebuild lock; ARGV[1] expected, ARGV[2] new position, then
-- (key, member, delta)*. Returns 1 when applied, 0 when not.
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
for i = 3, #ARGV, 3 do
  redis.call('ZINCRBY', ARGV[i], ARGV[i + 2], ARGV[i + 1])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
