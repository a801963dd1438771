-- Swaps a rebuild in, all or nothing, only while the lock is still this run's, and releases it.
-- KEYS[1] rebuild lock; ARGV[1] run, ARGV[2] n, n (temporary, live) pairs to rename, m, m
-- live keys to delete, then (position key, position)*.
-- Returns 1 when swapped, 0 when the lock is not ours, -1 when a temporary key is missing.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do
  if redis.call('EXISTS', ARGV[i]) == 0 then
    return -1
  end
end
for i = 3, 2 + 2 * n, 2 do
  redis.call('RENAME', ARGV[i], ARGV[i + 1])
end
local at = 3 + 2 * n
local m = tonumber(ARGV[at])
for i = at + 1, at + m do
  redis.call('DEL', ARGV[i])
end
for i = at + m + 1, #ARGV - 1, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1])
end
redis.call('DEL', KEYS[1])
return 1
