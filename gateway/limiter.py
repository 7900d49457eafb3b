"""Admission rate limits in Redis: the GCRA of `tributary.limits`, atomically, in one Lua call.

Every window of a user is checked and (only if all admit) updated in one script, so
concurrent gateways cannot both take the last slot. Redis's own clock is used, so
gateways with skewed clocks agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.errors import ApiError, DependencyUnavailable
from tributary.limits import Decision, Window

# Mirrors tributary.limits.decide; TATs in units of 1/limit ms (integers, exact in doubles).
GCRA_LUA = """
local now_ms = tonumber(ARGV[1])
if now_ms == 0 then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local cost = tonumber(ARGV[2])
local n = #KEYS
local new_tats = {}
local retry_after = 0
local b_remaining, b_limit, b_reset = nil, 0, 0
local ttl = 0
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local period = tonumber(ARGV[2 + 2 * i])
  local now = now_ms * limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  local start = math.max(tat, now)
  local new_tat = start + cost * period
  local allow_at = new_tat - period * limit
  local free, reset
  if allow_at > now then
    retry_after = math.max(retry_after, math.ceil((allow_at - now) / limit))
    free = now + period * limit - start
    reset = start - now
  else
    free = now + period * limit - new_tat
    reset = new_tat - now
  end
  local remaining = math.max(0, math.floor(free / period))
  new_tats[i] = new_tat
  if b_remaining == nil or remaining < b_remaining then
    b_remaining, b_limit, b_reset = remaining, limit, math.ceil(reset / limit)
  end
  ttl = math.max(ttl, math.ceil((new_tat - now) / limit) + 1)
end
if retry_after == 0 then
  for i = 1, n do
    redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl)
  end
  return {1, b_limit, b_remaining, b_reset, 0}
end
return {0, b_limit, b_remaining, b_reset, retry_after}
"""


@dataclass(frozen=True)
class Policy:
    """The windows of one class of routes, and what to do when Redis is down."""

    name: str
    windows: tuple[Window, ...]
    fail_open: bool


class RateLimiter:
    """Checks `policy` for a user in Redis; raises 429 or 503 as the policy says."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._script = client.register_script(GCRA_LUA)

    async def check(self, user_id: str, policy: Policy, cost: int = 1, now_ms: int = 0) -> Decision:
        """Admit or refuse `cost` requests now; `now_ms` only for tests (0 = Redis clock)."""
        keys = [f"{self._namespace}:rl:{policy.name}:{w}:{user_id}" for w in policy.windows]
        args: list[int] = [now_ms, cost]
        for window in policy.windows:
            args += [window.limit, window.period_ms]
        try:
            allowed, limit, remaining, reset, retry = await self._script(keys=keys, args=args)
        except RedisError as exc:
            if policy.fail_open:
                return Decision(True, policy.windows[0].limit, policy.windows[0].limit, 0, 0)
            raise DependencyUnavailable("redis", f"rate limiter unavailable: {exc}") from exc
        return Decision(bool(allowed), int(limit), int(remaining), int(reset), int(retry))


def headers(decision: Decision) -> dict[str, str]:
    """IETF RateLimit-* headers (and Retry-After when refused)."""
    result = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(-(-decision.reset_ms // 1000)),
    }
    if not decision.allowed:
        result["Retry-After"] = str(max(1, -(-decision.retry_after_ms // 1000)))
    return result


def refused(decision: Decision) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"Rate limit exceeded; retry in {decision.retry_after_ms} ms.",
        retry_after_ms=decision.retry_after_ms,
        headers=headers(decision),
    )
