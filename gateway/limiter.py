"""Admission rate limits in Redis: the GCRA of `tributary.limits`, atomically, in Lua.

Every window of a user is checked and (only if all admit) updated in one script, so
concurrent gateways cannot both take the last slot. Redis's own clock is used, so
gateways with skewed clocks agree. The checks of concurrent requests are coalesced: one
script call decides all of them, in the order they arrived (`gateway.coalesce`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

from gateway.coalesce import Coalescer
from gateway.errors import ApiError, DependencyUnavailable
from gateway.metrics import RATE_LIMIT_SECONDS
from schemas import keys as redis_keys
from tributary.limits import Decision, Window

# Mirrors tributary.limits.decide; TATs in units of 1/limit ms (integers, exact in doubles).
# ARGV: the number of checks, then per check: now_ms (0 = Redis's clock), cost, the number
# of windows n, then n pairs of limit and period_ms. KEYS: each check's n keys, in order.
# Returns five integers per check: allowed, limit, remaining, reset_ms, retry_after_ms.
GCRA_LUA = """
local redis_now = nil
local out = {}
local a = 2
local k = 0
for c = 1, tonumber(ARGV[1]) do
  local now_ms = tonumber(ARGV[a])
  if now_ms == 0 then
    if redis_now == nil then
      local t = redis.call('TIME')
      redis_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    now_ms = redis_now
  end
  local cost = tonumber(ARGV[a + 1])
  local n = tonumber(ARGV[a + 2])
  a = a + 3
  local new_tats = {}
  local retry_after = 0
  local b_remaining, b_limit, b_reset = nil, 0, 0
  local ttl = 0
  for i = 1, n do
    local limit = tonumber(ARGV[a + 2 * i - 2])
    local period = tonumber(ARGV[a + 2 * i - 1])
    local now = now_ms * limit
    local tat = tonumber(redis.call('GET', KEYS[k + i]) or now)
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
      redis.call('SET', KEYS[k + i], string.format('%.0f', new_tats[i]), 'PX', ttl)
    end
  end
  for _, v in ipairs({retry_after == 0 and 1 or 0, b_limit, b_remaining, b_reset, retry_after}) do
    out[#out + 1] = v
  end
  a = a + 2 * n
  k = k + n
end
return out
"""


@dataclass(frozen=True)
class Policy:
    """The windows of one class of routes, and what to do when Redis is down."""

    name: str
    windows: tuple[Window, ...]
    fail_open: bool


@dataclass(frozen=True)
class _Check:
    user_id: str
    policy: Policy
    cost: int
    now_ms: int


class RateLimiter:
    """Checks `policy` for a user in Redis; raises 429 or 503 as the policy says."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._namespace = namespace
        self._script = client.register_script(GCRA_LUA)
        self._by_slot = isinstance(client, RedisCluster)
        self._calls: Coalescer[_Check, Decision] = Coalescer(self._decide)

    async def check(self, user_id: str, policy: Policy, cost: int = 1, now_ms: int = 0) -> Decision:
        """Admit or refuse `cost` requests now; `now_ms` only for tests (0 = Redis clock)."""
        try:
            return await self._calls.submit(_Check(user_id, policy, cost, now_ms))
        except RedisError as exc:
            if policy.fail_open:
                return Decision(True, policy.windows[0].limit, policy.windows[0].limit, 0, 0)
            raise DependencyUnavailable("redis", f"rate limiter unavailable: {exc}") from exc

    async def admit(self, user_id: str, policy: Policy, cost: int = 1) -> dict[str, str]:
        """The RateLimit-* headers of an admitted request; raises 429 (refused) or 503."""
        decision = await self.check(user_id, policy, cost)
        if not decision.allowed:
            raise refused(decision)
        return headers(decision)

    async def _decide(self, checks: list[_Check]) -> list[Decision]:
        """One script call for all `checks`; on a Redis Cluster, one per hash slot (a
        script may only touch one slot's keys: each user's keys share theirs)."""
        calls = [self._keys_and_args(check) for check in checks]
        if not self._by_slot:
            return await self._call(calls)
        slots: dict[int, list[int]] = {}
        for i, (keys, _) in enumerate(calls):
            slots.setdefault(key_slot(keys[0].encode()), []).append(i)
        groups = list(slots.values())
        results = await asyncio.gather(*(self._call([calls[i] for i in g]) for g in groups))
        decisions: list[Decision] = [None] * len(checks)  # type: ignore[list-item]
        for group, decided in zip(groups, results, strict=True):
            for i, decision in zip(group, decided, strict=True):
                decisions[i] = decision  # every index is in exactly one group
        return decisions

    def _keys_and_args(self, check: _Check) -> tuple[list[str], list[int]]:
        windows = check.policy.windows
        keys = [
            redis_keys.rate_limit(self._namespace, check.policy.name, str(w), check.user_id)
            for w in windows
        ]
        args = [check.now_ms, check.cost, len(windows)]
        for window in windows:
            args += [window.limit, window.period_ms]
        return keys, args

    async def _call(self, calls: list[tuple[list[str], list[int]]]) -> list[Decision]:
        """Decide `calls` (each check's keys and arguments) in one script call, in order."""
        keys: list[str] = [k for check_keys, _ in calls for k in check_keys]
        args: list[int] = [len(calls)] + [a for _, check_args in calls for a in check_args]
        started = time.perf_counter()
        try:
            flat = await self._script(keys=keys, args=args)
        finally:
            RATE_LIMIT_SECONDS.observe(time.perf_counter() - started)
        return [
            Decision(bool(ok), int(limit), int(remaining), int(reset), int(retry))
            for ok, limit, remaining, reset, retry in zip(*[iter(flat)] * 5, strict=True)
        ]


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
